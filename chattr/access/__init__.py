"""Who may use chattr and how much.

`gate` (sign-in pairs, telling clients apart, the fair-use gate), `rate_limits` (sliding windows,
turn slots), `hf_signin` (Hugging Face sign-in on a Space), `upload_guard` (raw uploads bounded
by size), `public_url` (the address a request came through, forwarded headers from proxies).
"""
