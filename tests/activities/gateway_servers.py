"""Local stand-ins for the gateways the patient channels speak to: real HTTP on loopback, each checking
what the real one checks (Alibaba's request signature, WeChat's access token, our webhooks' HMAC) the
way its documentation says, written here from that documentation and not from our code, and answering
as the real one does. Each can be told to fail.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlsplit

Answer = tuple[int, dict]


class LocalGateway:
    """A threaded HTTP server on 127.0.0.1; `handle(method, path, query, headers, body)` gives the answer."""

    def __init__(self):
        self.requests: list[dict] = []
        # Answered, once each, before anything is checked: (status, JSON body).
        self.failures: list[Answer] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                parts = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if gateway.failures:
                    status, answer = gateway.failures.pop(0)
                else:
                    status, answer = gateway.handle(self.command, parts.path, dict(parse_qsl(parts.query)),
                                                    self.headers, body)
                payload = json.dumps(answer, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _serve

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def handle(self, method: str, path: str, query: dict, headers, body: bytes) -> Answer:
        raise NotImplementedError

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def _alibaba_encode(text: str) -> str:
    # Alibaba's documentation: URL-encode UTF-8 per RFC 3986, then "+" -> "%20", "*" -> "%2A", "%7E" -> "~".
    return quote(text, safe="").replace("+", "%20").replace("*", "%2A").replace("%7E", "~")


class AlibabaSms(LocalGateway):
    """dysmsapi SendSms: refuses a wrong signature or key, an unregistered template or sign name."""

    def __init__(self, access_key_id: str, access_key_secret: str, templates: set[str], sign_name: str):
        super().__init__()
        self.key_id, self.secret, self.templates, self.sign_name = access_key_id, access_key_secret, templates, sign_name
        self._biz_ids = itertools.count(900619746936498440)

    def handle(self, method, path, query, headers, body) -> Answer:
        self.requests.append(query)
        signature = query.pop("Signature", "")
        canonical = "&".join(f"{_alibaba_encode(k)}={_alibaba_encode(v)}" for k, v in sorted(query.items()))
        to_sign = f"{method}&{_alibaba_encode('/')}&{_alibaba_encode(canonical)}"
        expected = base64.b64encode(hmac.new(f"{self.secret}&".encode(), to_sign.encode(), hashlib.sha1).digest())
        if query.get("AccessKeyId") != self.key_id:
            return 404, {"Code": "InvalidAccessKeyId.NotFound", "Message": "Specified access key is not found."}
        if not hmac.compare_digest(expected.decode(), signature):
            return 400, {"Code": "SignatureDoesNotMatch", "Message": "Specified signature is not matched."}
        if query.get("Action") != "SendSms" or query.get("Version") != "2017-05-25":
            return 400, {"Code": "InvalidParameter", "Message": "action or version"}
        if query.get("SignName") != self.sign_name:
            return 200, {"Code": "isv.SMS_SIGNATURE_ILLEGAL", "Message": "签名不合法"}
        if query.get("TemplateCode") not in self.templates:
            return 200, {"Code": "isv.SMS_TEMPLATE_ILLEGAL", "Message": "模板不合法"}
        return 200, {"Code": "OK", "Message": "OK", "RequestId": "F655A8D5-B967-440B-8683-DAD6FF8DE990",
                     "BizId": f"{next(self._biz_ids)}^0"}


TC3_AUTHORIZATION = re.compile(r"TC3-HMAC-SHA256 Credential=([^/]+)/(\d{4}-\d{2}-\d{2})/sms/tc3_request, "
                               r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})")


def _hmac_sha256(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


class TencentSms(LocalGateway):
    """Tencent Cloud SendSms, API 2021-01-11: checks the TC3-HMAC-SHA256 Authorization as Tencent's signing
    document describes it (the headers it names, lower-cased, the body's SHA-256, a key derived from the
    secret per day and service; a timestamp within 5 minutes), then the SMS application, the approved
    signature and template."""

    def __init__(self, secret_id: str, secret_key: str, sdk_app_id: str, sign_name: str, templates: set[str]):
        super().__init__()
        self.secret_id, self.secret_key, self.sdk_app_id = secret_id, secret_key, sdk_app_id
        self.sign_name, self.templates = sign_name, templates
        self._serials = itertools.count(1045710669157053657849499619)

    @staticmethod
    def _error(code: str, message: str) -> Answer:
        return 200, {"Response": {"Error": {"Code": code, "Message": message},
                                  "RequestId": "a0aabda6-cf91-4f3e-a2b0-6d4bd1ba8ef8"}}

    def handle(self, method, path, query, headers, body) -> Answer:
        payload = json.loads(body) if body else {}
        self.requests.append({"headers": dict(headers.items()), **payload})
        authorization = TC3_AUTHORIZATION.fullmatch(headers.get("Authorization", ""))
        if method != "POST" or authorization is None:
            return self._error("AuthFailure.InvalidAuthorization", "Authorization is invalid")
        secret_id, day, signed_headers, signature = authorization.groups()
        if secret_id != self.secret_id:
            return self._error("AuthFailure.SecretIdNotFound", "The SecretId is not found")
        timestamp = headers.get("X-TC-Timestamp", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
            return self._error("AuthFailure.SignatureExpire", "Signature expired")
        canonical_headers = "".join(f"{name}:{(headers.get(name) or '').strip().lower()}\n"
                                    for name in signed_headers.split(";"))
        canonical_request = "\n".join([method, path, "", canonical_headers, signed_headers,
                                       hashlib.sha256(body).hexdigest()])
        string_to_sign = "\n".join(["TC3-HMAC-SHA256", timestamp, f"{day}/sms/tc3_request",
                                    hashlib.sha256(canonical_request.encode()).hexdigest()])
        signing_key = _hmac_sha256(_hmac_sha256(_hmac_sha256(f"TC3{self.secret_key}".encode(), day), "sms"),
                                   "tc3_request")
        expected = hmac.new(signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        if (day != datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%d")
                or "content-type" not in signed_headers.split(";") or not hmac.compare_digest(expected, signature)):
            return self._error("AuthFailure.SignatureFailure", "The provided credentials could not be validated")
        if headers.get("X-TC-Action") != "SendSms" or headers.get("X-TC-Version") != "2021-01-11":
            return self._error("InvalidAction", "action or version")
        if payload.get("SmsSdkAppId") != self.sdk_app_id:
            return self._error("InvalidParameterValue.SdkAppIdNotExist", "SdkAppId not exist")
        if payload.get("SignName") != self.sign_name:
            return self._error("FailedOperation.SignatureIncorrectOrUnapproved", "签名未审批或格式错误")
        if payload.get("TemplateId") not in self.templates:
            return self._error("FailedOperation.TemplateIncorrectOrUnapproved", "模板未审批或内容不匹配")
        return 200, {"Response": {"SendStatusSet": [
            {"SerialNo": f"5000:{next(self._serials)}", "PhoneNumber": number, "Fee": 1,
             "SessionContext": payload.get("SessionContext", ""), "Code": "Ok", "Message": "send success",
             "IsoCode": "CN"} for number in payload.get("PhoneNumberSet", [])],
            "RequestId": "a0aabda6-cf91-4f3e-a2b0-6d4bd1ba8ef8"}}


# WeChat's documented longest value of a subscription notification's field, by the type its name begins
# with (订阅通知 参数值内容限制): a thing 20 characters, a phrase 5 Chinese characters, and so on.
SUBSCRIBE_VALUE_LIMITS = {"thing": 20, "number": 32, "letter": 32, "symbol": 5, "character_string": 32,
                          "phone_number": 17, "car_number": 8, "phrase": 5}


class WeChat(LocalGateway):
    """An Official Account's API: /cgi-bin/token issues tokens for the right AppID and AppSecret, and a new
    token ends the one before it (as WeChat does); template/send wants a live token, a known template,
    a follower's openid; subscribe/bizsend a live token and a patient who agreed to that template
    (`subscriptions`: (openid, template id)), and refuses a field value longer than its type allows."""

    def __init__(self, app_id: str, app_secret: str, templates: set[str], followers: set[str],
                 subscriptions: frozenset[tuple[str, str]] = frozenset()):
        super().__init__()
        self.app_id, self.app_secret, self.templates, self.followers = app_id, app_secret, templates, followers
        self.subscriptions = subscriptions
        self.live_token: str | None = None
        self.tokens_issued = 0
        self._msg_ids = itertools.count(200228332)

    def expire_token(self) -> None:
        self.live_token = None

    def handle(self, method, path, query, headers, body) -> Answer:
        if path == "/cgi-bin/token":
            if query.get("grant_type") != "client_credential" or query.get("appid") != self.app_id:
                return 200, {"errcode": 40013, "errmsg": "invalid appid"}
            if query.get("secret") != self.app_secret:
                return 200, {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"}
            self.tokens_issued += 1
            self.live_token = f"token-{self.tokens_issued}"
            return 200, {"access_token": self.live_token, "expires_in": 7200}
        if path not in ("/cgi-bin/message/template/send", "/cgi-bin/message/subscribe/bizsend") or method != "POST":
            return 404, {"errcode": 404, "errmsg": "not found"}
        message = json.loads(body)
        self.requests.append({"path": path, "access_token": query.get("access_token"), **message})
        if query.get("access_token") != self.live_token:
            return 200, {"errcode": 42001, "errmsg": "access_token expired"}
        if path == "/cgi-bin/message/template/send":
            if message.get("template_id") not in self.templates:
                return 200, {"errcode": 40037, "errmsg": "invalid template_id"}
            if message.get("touser") not in self.followers:
                return 200, {"errcode": 43004, "errmsg": "require subscribe"}
        else:
            if (message.get("touser"), message.get("template_id")) not in self.subscriptions:
                return 200, {"errcode": 43101, "errmsg": "user refuse to accept the msg"}
            for name, field in message.get("data", {}).items():
                limit = SUBSCRIBE_VALUE_LIMITS.get(name.rstrip("0123456789"))
                if limit is not None and len(field.get("value", "")) > limit:
                    return 200, {"errcode": 47003, "errmsg": f"argument invalid! data.{name}.value"}
        return 200, {"errcode": 0, "errmsg": "ok", "msgid": next(self._msg_ids)}


class SignedWebhook(LocalGateway):
    """The hospital's own gateway: takes a POST only with a fresh, valid HMAC-SHA256 of "<timestamp>.<body>"."""

    def __init__(self, secret: str, answer_id: Callable[[dict], str] | None = None):
        super().__init__()
        self.secret = secret
        self.answer_id = answer_id

    def handle(self, method, path, query, headers, body) -> Answer:
        timestamp = headers.get("X-Carepath-Timestamp", "")
        expected = "sha256=" + hmac.new(self.secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        if method != "POST" or not hmac.compare_digest(expected, headers.get("X-Carepath-Signature", "")):
            return 401, {"error": "bad signature"}
        payload = json.loads(body)
        self.requests.append(payload)
        return 202, ({"id": self.answer_id(payload)} if self.answer_id else {})
