"""Prototype sentences per emotion label: what a character says when it feels that way.

Written for the classifier in `emotions.py`, which labels a sentence by its nearest prototypes.
Short, spoken, first person, varied in topic so that the feeling, not the subject, is what they
share. tests/chattr/turn/emotion_samples.py holds other sentences, to measure it on.
"""

from __future__ import annotations

PROTOTYPES: dict[str, tuple[str, ...]] = {
    "admiration": (
        "What you have done is truly remarkable.",
        "I have great respect for such courage.",
        "That was brilliantly done, I am impressed.",
        "Few people could have achieved what she did.",
    ),
    "amusement": (
        "Ha, that is the funniest thing I have heard all week.",
        "You make me laugh, truly.",
        "How ridiculous, I cannot stop giggling.",
        "That joke was rather amusing, I admit.",
    ),
    "anger": (
        "How dare you speak to me like that!",
        "I am furious, this is an outrage.",
        "That makes my blood boil.",
        "Get out of my sight before I lose my temper.",
    ),
    "annoyance": (
        "Oh, not this again, it is so tiresome.",
        "You are getting on my nerves.",
        "Must you keep interrupting me?",
        "Ugh, how irritating.",
    ),
    "approval": (
        "Yes, that is exactly right.",
        "I agree, a sound decision.",
        "Good, I approve of this plan.",
        "That is correct, well reasoned.",
    ),
    "caring": (
        "Take care of yourself, and rest well tonight.",
        "Are you all right? Let me help you.",
        "I only want you to be safe and warm.",
        "Do not worry, I will look after you.",
    ),
    "confusion": (
        "I do not understand what you mean.",
        "Wait, how does that make any sense?",
        "I am puzzled, could you explain again?",
        "I am lost, none of this adds up.",
    ),
    "curiosity": (
        "Tell me more, I want to know how it works.",
        "I wonder what lies beyond those mountains.",
        "What happened next? I am curious.",
        "How interesting, why do you think that is?",
    ),
    "desire": (
        "I long to see the sea once more.",
        "I want it so badly.",
        "If only I could have that crown.",
        "I wish with all my heart to go there.",
    ),
    "disappointment": (
        "I expected so much more from you.",
        "What a letdown, it was not what I hoped.",
        "I am disappointed that it came to nothing.",
        "Sadly, the results fell short of my hopes.",
    ),
    "disapproval": (
        "No, I do not think that is right.",
        "That is a poor idea and I will not support it.",
        "You should not have done that.",
        "I disagree, this was a mistake.",
    ),
    "disgust": (
        "That is revolting, I feel sick.",
        "How disgusting, get it away from me.",
        "The stench was vile and the food was rotten.",
        "What a repulsive, filthy thing to do.",
    ),
    "embarrassment": (
        "Oh, how embarrassing, I am blushing.",
        "I wish the floor would swallow me up.",
        "I feel so awkward, forgive my clumsiness.",
        "That was humiliating, everyone saw me fall.",
    ),
    "excitement": (
        "I cannot wait, this is going to be amazing!",
        "How thrilling, let us go right now!",
        "I am so excited I can hardly sit still!",
        "Wow, this is the best news ever!",
    ),
    "fear": (
        "I am terrified, something is out there.",
        "Please, I am scared, do not leave me alone.",
        "The dark frightens me.",
        "I fear we will not survive the night.",
    ),
    "gratitude": (
        "Thank you so much for your kindness.",
        "I am deeply grateful for your help.",
        "Thanks, I owe you one.",
        "I cannot thank you enough.",
    ),
    "grief": (
        "He is gone, and I will never see him again.",
        "My heart is broken since she died.",
        "We buried my dearest friend today.",
        "I mourn the loss every single day.",
    ),
    "joy": (
        "I am so happy today!",
        "What a wonderful, delightful day.",
        "This fills me with joy.",
        "I feel glad and light, everything is good.",
    ),
    "love": (
        "I love you with all my heart.",
        "You mean everything to me, my darling.",
        "I adore my family more than anything.",
        "My love for her grows every day.",
    ),
    "nervousness": (
        "I am a little nervous about tomorrow.",
        "My hands are shaking, I feel so anxious.",
        "I hope nothing goes wrong, I am uneasy.",
        "I cannot stop worrying about the exam.",
    ),
    "neutral": (
        "The meeting is at three o'clock.",
        "The river runs north through the valley.",
        "I was born in a small town on an island.",
        "The book has twelve chapters.",
        "We travelled by carriage and then by boat.",
        "The formula describes the motion of light.",
    ),
    "optimism": (
        "I am sure things will get better soon.",
        "Tomorrow will bring a brighter day.",
        "We can do this, I believe we will succeed.",
        "There is always hope for the future.",
    ),
    "pride": (
        "I am proud of what I have accomplished.",
        "My greatest victory was my own doing.",
        "Look at what I built with my own hands.",
        "I am proud of you, you did it yourself.",
    ),
    "realization": (
        "Oh, now I see what you meant.",
        "Ah, it suddenly makes sense to me.",
        "I just realized the answer was there all along.",
        "So that is why it happened, now I understand.",
    ),
    "relief": (
        "Phew, what a relief that it is over.",
        "Thank goodness you are safe.",
        "I can finally breathe easy again.",
        "I am so relieved the danger has passed.",
    ),
    "remorse": (
        "I am so sorry, it was all my fault.",
        "I regret what I did and I apologise.",
        "Forgive me, I should never have said that.",
        "I feel guilty for hurting you.",
    ),
    "sadness": (
        "I feel so sad and lonely tonight.",
        "It makes me want to cry.",
        "Everything feels grey and hopeless.",
        "I am unhappy and my heart is heavy.",
    ),
    "surprise": (
        "What? I did not expect that at all!",
        "Really? That is astonishing!",
        "Oh my, what a surprise!",
        "I cannot believe it, how unexpected!",
    ),
}
