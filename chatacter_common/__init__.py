"""Code shared by chattr, vocalizr and visualizr; imports none of them."""
