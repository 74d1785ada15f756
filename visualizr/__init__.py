"""visualizr: the talking-head video service of Chatacter (speech audio + portrait → MP4)."""

from visualizr.engines import TalkingHeadEngine, load_engine
from visualizr.render import Renderer, VideoResult
from visualizr.settings import Settings

__all__ = ["Renderer", "Settings", "TalkingHeadEngine", "VideoResult", "load_engine"]
