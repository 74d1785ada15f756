"""The page and the named API: its layout, the handlers of its controls, the endpoints scripts
call with gradio_client."""
