"""WeChat's side of the conversation, built on wechatpy: signs, encrypts, decrypts.

`WeChatPeer` sends callbacks exactly as WeChat's servers do (query-string
signature over token/timestamp/nonce; in safe mode the message AES-encrypted
inside <Encrypt> with msg_signature) and reads our answers back the way WeChat
would (verifying and decrypting encrypted replies with wechatpy).
"""
from __future__ import annotations

import base64
import os
import secrets
import time
from dataclasses import dataclass
from typing import Optional
from xml.sax.saxutils import escape

import requests
import xmltodict
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

ACCOUNT = "gh_kefu_test"  # the Official Account's own id (ToUserName)


def new_openid() -> str:
    """A fresh 28-character openid like WeChat's."""
    return "o" + secrets.token_urlsafe(21)[:27].replace("-", "x").replace("_", "y")


def new_aes_key() -> str:
    return base64.b64encode(os.urandom(32)).decode().rstrip("=")


def sign(*parts: str) -> str:
    signer = WeChatSigner()
    signer.add_data(*parts)
    return signer.signature


@dataclass
class Answer:
    status: int
    body: str
    #: The reply's text (None when the answer is "success" or an error).
    text: Optional[str] = None
    msg_type: Optional[str] = None


class WeChatPeer:
    def __init__(self, url: str, token: str, appid: str, aes_key: str) -> None:
        self.url = url
        self.token = token
        self.appid = appid
        self.crypto = WeChatCrypto(token, aes_key, appid)
        self._msg_id = int(time.time() * 1000) * 1000

    # --- building callbacks -------------------------------------------------
    def next_msg_id(self) -> str:
        self._msg_id += 1
        return str(self._msg_id)

    @staticmethod
    def text_xml(openid: str, content: str, msg_id: str) -> str:
        return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
                f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
                f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
                f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>")

    @staticmethod
    def event_xml(openid: str, event: str, key: str = "", create_time: Optional[int] = None) -> str:
        return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
                f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
                f"<CreateTime>{create_time or int(time.time())}</CreateTime>"
                f"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event>"
                f"<EventKey><![CDATA[{escape(key)}]]></EventKey></xml>")

    @staticmethod
    def image_xml(openid: str, msg_id: str) -> str:
        return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
                f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
                f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[image]]></MsgType>"
                f"<PicUrl><![CDATA[http://127.0.0.1/x.jpg]]></PicUrl>"
                f"<MediaId><![CDATA[media1]]></MediaId><MsgId>{msg_id}</MsgId></xml>")

    def signed_query(self, openid: str, timestamp: Optional[int] = None,
                     token: Optional[str] = None) -> dict[str, str]:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        nonce = secrets.token_hex(5)
        return {"signature": sign(token or self.token, ts, nonce), "timestamp": ts,
                "nonce": nonce, "openid": openid}

    # --- sending ------------------------------------------------------------
    def post(self, xml: str, openid: str, aes: bool = False, timestamp: Optional[int] = None,
             query: Optional[dict[str, str]] = None, timeout: float = 30.0) -> Answer:
        query = dict(query or self.signed_query(openid, timestamp))
        body = xml
        if aes:
            envelope = xmltodict.parse(
                self.crypto.encrypt_message(xml, query["nonce"], query["timestamp"]))["xml"]
            query.update(encrypt_type="aes", msg_signature=envelope["MsgSignature"])
            body = (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
                    f"<Encrypt><![CDATA[{envelope['Encrypt']}]]></Encrypt></xml>")
        response = requests.post(self.url, params=query, data=body.encode("utf-8"),
                                 headers={"Content-Type": "text/xml"}, timeout=timeout)
        return self.read(response, aes)

    def read(self, response: requests.Response, aes: bool) -> Answer:
        body = response.text
        answer = Answer(response.status_code, body)
        if response.status_code != 200 or body in ("", "success"):
            return answer
        if aes:
            reply = xmltodict.parse(body)["xml"]
            body = self.crypto.decrypt_message(body, reply["MsgSignature"], reply["TimeStamp"],
                                               reply["Nonce"])  # verifies the signature
        message = parse_message(body)
        answer.msg_type = message.type
        answer.text = getattr(message, "content", None)
        return answer

    def say(self, openid: str, text: str, aes: bool = False) -> Answer:
        return self.post(self.text_xml(openid, text, self.next_msg_id()), openid, aes=aes)
