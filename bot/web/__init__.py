"""The website side of Kefu: the chat widget (static/) and the small server that
serves it with a demo shop page (server.py).  The widget talks to Rasa's
socket.io endpoint directly (bot.channels.web); this server never sees a message.
"""
