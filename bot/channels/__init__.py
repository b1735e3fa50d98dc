"""Input channels Kefu adds to Rasa's own (named by module path in credentials.yml).

`web` is the website chat widget's socket.io channel (with `web_token`, the
shop's signed customer token); `wechat` is the WeChat Official Account (公众号) channel; the helpers it uses
(bounded body reading and safe XML parsing, MsgId de-duplication, the
customer-service message API client) live in their own modules so that the
next WeChat-family channel (企业微信 微信客服) can reuse them.
"""
