/*
 * Kefu chat widget: plain JavaScript, no framework, no outside requests.
 *
 *   <link rel="stylesheet" href="https://KEFU/widget/static/kefu-widget.css">
 *   <script src="https://KEFU/widget/static/vendor/socket.io.min.js"></script>
 *   <script src="https://KEFU/widget/static/kefu-widget.js"></script>
 *   KefuWidget.mount({socketUrl: "https://KEFU-RASA", token: "<JWT signed by the shop>"});
 *
 * Talks Rasa's socket.io protocol (session_request / session_confirm /
 * user_uttered / bot_uttered).  The session id and the transcript live in
 * localStorage, so a reload continues the same conversation; they are kept
 * per shop user (the token's uid, read but not trusted here: the server
 * verifies the token), so a different login on the same browser never sees
 * someone else's chat.  Every piece of bot text is inserted as text, never
 * as HTML.
 *
 * Each message carries an id and stays queued until the server acknowledges
 * it (once the bot has processed and stored it).  If the connection drops
 * first, it is sent again after reconnecting; the server answers an id it
 * already processed from its store (marked `replay_of`), and an answer is
 * shown only if the original (`in_reply_to`) never arrived.  So a message is
 * neither lost nor answered twice on a bad connection (bot/channels/web.py).
 * Queued messages live in memory: a reload before the acknowledgement loses
 * them.
 */
(function (global) {
  "use strict";

  var DEFAULTS = {
    socketUrl: "",
    socketPath: "/socket.io",
    token: null,            // the shop's signed customer token (string), or null
    getToken: null,         // or a function returning a fresh one for each message
    open: false,            // start opened
    fullPage: false,        // fill the page, no launcher (the standalone page)
    title: "小K 在线客服",
    storagePrefix: "kefu.",
    maxHistory: 200,
    imageOrigins: null,     // origins images may come from; default: this page and the socket server
    welcome: "您好，我是小K，有什么可以帮您？可以直接输入问题，或点下面的按钮。",
    quickStart: [
      {title: "查订单", payload: "我的订单到哪了"},
      {title: "运费规则", payload: "满多少包邮"},
      {title: "我要投诉", payload: "我要投诉"},
      {title: "转人工", payload: "转人工客服"}
    ]
  };

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function storage() {
    try { var s = global.localStorage; s.setItem("kefu.probe", "1"); s.removeItem("kefu.probe"); return s; }
    catch (e) { return null; }  // private mode, blocked storage: the chat still works, without memory
  }

  /* The token's uid, only to keep one browser's chats apart per shop user. */
  function tokenSubject(token) {
    if (typeof token !== "string") return "guest";
    try {
      var part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      var claims = JSON.parse(decodeURIComponent(escape(global.atob(part))));
      return typeof claims.uid === "string" && claims.uid ? "u:" + claims.uid : "guest";
    } catch (e) { return "guest"; }
  }

  function originOf(url) {
    try { return new URL(url, global.location.href).origin; } catch (e) { return null; }
  }

  function Widget(options) {
    var o = {};
    Object.keys(DEFAULTS).forEach(function (k) { o[k] = DEFAULTS[k]; });
    Object.keys(options || {}).forEach(function (k) { if (options[k] !== undefined) o[k] = options[k]; });
    if (!o.socketUrl) throw new Error("KefuWidget: socketUrl is required");
    this.o = o;
    this.store = storage();
    this.sessionKey = o.storagePrefix + "session." + tokenSubject(this.currentToken());
    this.sessionId = this.store ? this.store.getItem(this.sessionKey) : null;
    this.confirmed = false;
    this.outbox = [];       // {id, payload} not yet sent on this connection
    this.unacked = [];      // sent, not yet acknowledged by the server
    this.answered = [];     // ids of our messages whose answer arrived (newest last)
    this.history = this.loadHistory();
    this.imageOrigins = o.imageOrigins || [global.location.origin, originOf(o.socketUrl)];
    this.build();
    this.render();
    this.connect();
    if (o.open || o.fullPage) this.open();
  }

  Widget.prototype.currentToken = function () {
    if (typeof this.o.getToken === "function") {
      try { return this.o.getToken(); } catch (e) { return null; }
    }
    return this.o.token;
  };

  // --- transcript ---------------------------------------------------------

  Widget.prototype.historyKey = function () {
    return this.sessionId ? this.o.storagePrefix + "history." + this.sessionId : null;
  };

  Widget.prototype.loadHistory = function () {
    var key = this.historyKey();
    if (!this.store || !key) return [];
    try {
      var items = JSON.parse(this.store.getItem(key) || "[]");
      return Array.isArray(items) ? items : [];
    } catch (e) { return []; }
  };

  Widget.prototype.saveHistory = function () {
    var key = this.historyKey();
    if (!this.store || !key) return;
    this.history = this.history.slice(-this.o.maxHistory);
    try { this.store.setItem(key, JSON.stringify(this.history)); } catch (e) { /* full: keep going */ }
  };

  Widget.prototype.add = function (entry) {
    this.history.push(entry);
    this.saveHistory();
    this.render();
  };

  // --- DOM ------------------------------------------------------------------

  Widget.prototype.build = function () {
    var self = this, o = this.o;
    var root = el("div", "kefu-root" + (o.fullPage ? " kefu-full" : ""));
    var launcher = el("button", "kefu-launcher", "在线客服");
    launcher.type = "button";
    launcher.setAttribute("aria-label", "打开在线客服");
    launcher.addEventListener("click", function () { self.open(); });

    var panel = el("section", "kefu-panel");
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-label", o.title);
    panel.hidden = true;

    var header = el("header", "kefu-header");
    header.appendChild(el("span", "kefu-title", o.title));
    this.statusDot = el("span", "kefu-dot");
    this.statusDot.setAttribute("title", "连接中");
    header.appendChild(this.statusDot);
    if (!o.fullPage) {
      var close = el("button", "kefu-close", "×");
      close.type = "button";
      close.setAttribute("aria-label", "关闭");
      close.addEventListener("click", function () { self.close(); });
      header.appendChild(close);
    }

    this.banner = el("div", "kefu-banner", "正在连接客服…");
    this.list = el("ol", "kefu-messages");
    this.list.setAttribute("aria-live", "polite");
    this.typing = el("div", "kefu-typing");
    this.typingText = el("span", "kefu-typing-text", "小K正在输入");
    this.typing.appendChild(this.typingText);
    this.typing.appendChild(el("span", "kefu-typing-dots"));
    this.typing.hidden = true;

    var form = el("form", "kefu-composer");
    this.input = el("input", "kefu-input");
    this.input.type = "text";
    this.input.maxLength = 1000;
    this.input.placeholder = "请输入您的问题…";
    this.input.setAttribute("aria-label", "输入消息");
    this.input.autocomplete = "off";
    var send = el("button", "kefu-send", "发送");
    send.type = "submit";
    form.appendChild(this.input);
    form.appendChild(send);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var text = self.input.value.trim();
      if (!text) return;
      self.input.value = "";
      self.send(text, text);
    });

    panel.appendChild(header);
    panel.appendChild(this.banner);
    panel.appendChild(this.list);
    panel.appendChild(this.typing);
    panel.appendChild(form);
    if (!o.fullPage) root.appendChild(launcher);
    root.appendChild(panel);
    document.body.appendChild(root);
    this.root = root; this.panel = panel; this.launcher = launcher;
  };

  Widget.prototype.open = function () {
    this.panel.hidden = false;
    this.launcher.hidden = true;
    this.root.classList.add("kefu-open");
    this.scrollDown();
    this.input.focus();
  };

  Widget.prototype.close = function () {
    this.panel.hidden = true;
    this.launcher.hidden = false;
    this.root.classList.remove("kefu-open");
  };

  Widget.prototype.scrollDown = function () { this.list.scrollTop = this.list.scrollHeight; };

  Widget.prototype.safeImage = function (src) {
    if (typeof src !== "string" || !src) return null;
    var url;
    try { url = new URL(src, global.location.href); } catch (e) { return null; }
    if (url.protocol === "data:") return /^data:image\/(png|jpeg|gif|webp);/i.test(src) ? src : null;
    if (url.protocol !== "http:" && url.protocol !== "https:") return null;
    return this.imageOrigins.indexOf(url.origin) >= 0 ? url.href : null;
  };

  Widget.prototype.render = function () {
    var self = this, list = this.list;
    while (list.firstChild) list.removeChild(list.firstChild);
    var entries = [{from: "bot", text: this.o.welcome, quickReplies: this.o.quickStart, local: true}]
      .concat(this.history);
    entries.forEach(function (entry, index) {
      var item = el("li", "kefu-msg " + (entry.from === "user" ? "kefu-user" : "kefu-bot"));
      if (entry.image) {
        var src = self.safeImage(entry.image);
        if (src) {
          var img = el("img", "kefu-image");
          img.alt = "图片";
          img.src = src;
          img.addEventListener("load", function () { self.scrollDown(); });
          item.appendChild(img);
        } else {
          item.appendChild(el("div", "kefu-bubble", "[图片无法显示]"));
        }
      }
      if (entry.agent) item.appendChild(el("div", "kefu-agent", "人工客服 " + entry.agent));
      if (entry.text) item.appendChild(el("div", "kefu-bubble", entry.text));
      var replies = Array.isArray(entry.quickReplies) ? entry.quickReplies : [];
      if (replies.length && index === entries.length - 1) {
        var box = el("div", "kefu-quick-replies");
        replies.forEach(function (reply) {
          if (!reply || typeof reply.title !== "string") return;
          var button = el("button", "kefu-quick-reply", reply.title);
          button.type = "button";
          button.addEventListener("click", function () {
            self.send(typeof reply.payload === "string" ? reply.payload : reply.title, reply.title);
          });
          box.appendChild(button);
        });
        item.appendChild(box);
      }
      list.appendChild(item);
    });
    this.scrollDown();
  };

  Widget.prototype.setTyping = function (on) {
    var self = this;
    clearTimeout(this.typingTimer);
    this.typing.hidden = !on;
    // With a human agent on the chat there is no instant answer to wait for:
    // say who is answering, and do not pretend to type for long.
    this.typingText.textContent = this.withAgent ? "人工客服正在处理" : "小K正在输入";
    if (on) this.typingTimer = setTimeout(function () { self.typing.hidden = true; },
                                          this.withAgent ? 5000 : 30000);
    this.scrollDown();
  };

  Widget.prototype.setOnline = function (online, text) {
    this.root.classList.toggle("kefu-offline", !online);
    this.statusDot.setAttribute("title", online ? "在线" : "未连接");
    this.banner.textContent = text || "";
    this.banner.hidden = online;
  };

  // --- socket.io ------------------------------------------------------------

  Widget.prototype.connect = function () {
    var self = this;
    if (typeof global.io !== "function") {
      this.setOnline(false, "客服组件加载失败，请刷新页面重试。");
      return;
    }
    // socket.io reconnects by itself with exponential backoff (1 s doubling to
    // 15 s, ±50% jitter so a restarted server is not hit by everyone at once).
    var socket = global.io(this.o.socketUrl, {
      path: this.o.socketPath,
      transports: ["websocket", "polling"],
      reconnection: true,
      reconnectionDelay: 1000,
      reconnectionDelayMax: 15000,
      randomizationFactor: 0.5,
      timeout: 10000
    });
    this.socket = socket;
    socket.on("connect", function () {
      self.confirmed = false;
      socket.emit("session_request", {session_id: self.sessionId});
    });
    socket.on("session_confirm", function (sessionId) {
      var id = typeof sessionId === "string" ? sessionId : (sessionId && sessionId.session_id);
      if (!id) return;
      if (id !== self.sessionId) {
        var first = !self.sessionId;  // a first visit keeps what was typed before the confirm
        self.sessionId = id;
        if (self.store) self.store.setItem(self.sessionKey, id);
        if (first) self.saveHistory(); else { self.history = self.loadHistory(); self.render(); }
      }
      self.confirmed = true;
      self.setOnline(true);
      self.flush();
    });
    socket.on("bot_uttered", function (message) { self.receive(message); });
    socket.on("disconnect", function () {
      self.confirmed = false;
      // Whatever was not acknowledged goes out again, first, after reconnecting.
      self.outbox = self.unacked.concat(self.outbox);
      self.unacked = [];
      self.setOnline(false, "连接已断开，正在重新连接…");
    });
    socket.on("connect_error", function () {
      self.setOnline(false, "暂时连不上客服，正在重试…");
    });
    socket.io.on("reconnect_attempt", function (attempt) {
      self.setOnline(false, "连接已断开，正在第 " + attempt + " 次重连…");
    });
  };

  /* Send a message: `payload` goes to the bot, `shown` is what the customer sees. */
  Widget.prototype.send = function (payload, shown) {
    this.add({from: "user", text: shown});
    this.outbox.push({id: newMessageId(), payload: payload});
    this.setTyping(true);
    this.flush();
  };

  Widget.prototype.flush = function () {
    var self = this;
    if (!this.socket || !this.confirmed) return;  // sent after session_confirm
    while (this.outbox.length) {
      var entry = this.outbox.shift();
      var token = this.currentToken();
      var data = {message: entry.payload, session_id: this.sessionId, message_id: entry.id, customData: {}};
      if (token) data.customData.token = token;
      this.unacked.push(entry);
      this.socket.emit("user_uttered", data, function () { self.acknowledged(entry.id); });
    }
  };

  Widget.prototype.acknowledged = function (id) {
    this.unacked = this.unacked.filter(function (entry) { return entry.id !== id; });
  };

  Widget.prototype.receive = function (message) {
    if (!message || typeof message !== "object") return;
    if (typeof message.replay_of === "string") {
      // The stored answer to a message we sent again: only if the original never came.
      if (this.answered.indexOf(message.replay_of) >= 0 && !this.replaying(message.replay_of)) return;
      this.replayingId = message.replay_of;
      this.markAnswered(message.replay_of);
    } else if (typeof message.in_reply_to === "string") {
      this.replayingId = null;
      this.markAnswered(message.in_reply_to);
    }
    this.setTyping(false);
    var entry = {from: "bot"};
    if (typeof message.text === "string") entry.text = message.text;
    // Agent replies from the desk carry the agent's display name (bot/channels/web.py).
    if (typeof message.agent === "string" && message.agent) entry.agent = message.agent.slice(0, 32);
    this.withAgent = !!entry.agent || (this.withAgent && !message.quick_replies && !message.buttons);
    var attachment = message.attachment;
    if (attachment && attachment.type === "image" && attachment.payload) entry.image = attachment.payload.src;
    var replies = message.quick_replies || message.buttons;
    if (Array.isArray(replies) && replies.length) {
      entry.quickReplies = replies.map(function (r) {
        return {title: String(r.title || ""), payload: typeof r.payload === "string" ? r.payload : String(r.title || "")};
      });
    }
    if (!entry.text && !entry.image) return;  // nothing we can show (custom JSON)
    this.add(entry);
  };

  /* A replay answer has several parts: once its first part is shown, show the rest. */
  Widget.prototype.replaying = function (id) { return this.replayingId === id; };

  Widget.prototype.markAnswered = function (id) {
    if (this.answered.indexOf(id) < 0) this.answered.push(id);
    if (this.answered.length > 100) this.answered.shift();
  };

  function newMessageId() {
    var bytes = new Uint8Array(12);
    if (global.crypto && global.crypto.getRandomValues) global.crypto.getRandomValues(bytes);
    else for (var i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
    return "w-" + Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  global.KefuWidget = {
    mount: function (options) { return new Widget(options); },
    version: "1.1.0"
  };
})(window);
