/*
 * Kefu agent desk (vanilla JS, no outside requests; CSP "default-src 'self'").
 * Customer text is only ever put into the page with textContent.
 *
 * Stable hooks for browser tests:
 *   login page:     #login-form #username #password #login, error #login-error
 *   header:         #me[data-username] #logout #nav-manager #live-status
 *   queue:          #queue, items [data-testid=queue-item][data-escalation-id][data-status=pending|open]
 *                   (.mine when assigned to me), badges .badge.prio-high .badge.callback (回电)
 *   SLA timers:     [data-testid=sla][data-due][data-breached=true|false], class .breached when overdue
 *   conversation:   body[data-conversation-id], #chat-head[data-status][data-assigned-to]
 *                   #claim #transfer-to #transfer #resolve
 *   transcript:     #transcript, turns [data-testid=turn][data-from=customer|bot|agent|note]
 *   composer:       #reply-text #send #canned-list (li[data-code]) #note-text #add-note
 *   feedback:       #flash (error/warning text, role=alert)
 *   customer 360:   #customer-panel #customer-unknown #cust-tier #cust-stage #cust-clv #cust-churn
 *                   #cust-orders #cust-complaints #cust-consents
 */
(function () {
  "use strict";

  var body = document.body;
  var conversationId = body.getAttribute("data-conversation-id") || "";
  var me = body.getAttribute("data-me") || "";
  var canned = [];
  var seenNotes = {};

  var K = window.KefuDesk, $ = K.$, el = K.el, flash = K.flash, api = K.api, clock = K.clock;

  function span(seconds) {
    var s = Math.abs(Math.floor(seconds));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    function two(n) { return (n < 10 ? "0" : "") + n; }
    return (h ? h + ":" + two(m) : m) + ":" + two(r);
  }

  /* SLA countdowns and waiting times tick every second on the client. */
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-testid=sla][data-due]").forEach(function (node) {
      var left = (new Date(node.getAttribute("data-due")).getTime() - now) / 1000;
      var done = node.getAttribute("data-done") === "1";
      var breached = node.getAttribute("data-breached") === "true" || (!done && left < 0);
      node.classList.toggle("breached", breached);
      if (breached && !done) { node.setAttribute("data-breached", "true"); }
      var out = node.querySelector(".sla-left");
      if (out && !done) { out.textContent = left >= 0 ? "剩余 " + span(left) : "已超时 " + span(left); }
      if (out && done) { out.textContent = "已完成"; }
    });
    document.querySelectorAll(".waited[data-since]").forEach(function (node) {
      node.textContent = span((now - new Date(node.getAttribute("data-since")).getTime()) / 1000);
    });
  }

  function slaNode(label, due, breached, done) {
    if (!due) { return null; }
    var node = el("span", "sla");
    node.setAttribute("data-testid", "sla");
    node.setAttribute("data-due", due);
    node.setAttribute("data-breached", breached ? "true" : "false");
    if (done) { node.setAttribute("data-done", "1"); }
    node.appendChild(document.createTextNode(label + " "));
    node.appendChild(el("b", "sla-left", clock(due)));
    return node;
  }

  /* ---- queue ---- */
  function renderQueue(list) {
    var ul = $("#queue");
    if (!ul) { return; }
    ul.textContent = "";
    $("#queue-count").textContent = String(list.length);
    if (!list.length) { ul.appendChild(el("li", "empty", "暂无排队或进行中的会话")); }
    list.forEach(function (c) {
      var li = el("li", "queue-item " + c.status);
      li.setAttribute("data-testid", "queue-item");
      li.setAttribute("data-escalation-id", String(c.id));
      li.setAttribute("data-status", c.status);
      if (c.assigned_to === me) { li.classList.add("mine"); }
      if (String(c.id) === conversationId) { li.classList.add("current"); }
      var a = el("a");
      a.href = "/desk/c/" + encodeURIComponent(c.id);
      a.appendChild(el("span", "name", c.customer_name || "未识别客户"));
      a.appendChild(el("span", "badge prio-" + c.priority, c.priority_label));
      if (c.tier_label) { a.appendChild(el("span", "badge tier-" + c.tier, c.tier_label)); }
      if (c.callback) { a.appendChild(el("span", "badge callback", "回电")); }
      a.appendChild(el("span", "meta", c.reason_label + " · " + c.channel));
      var meta = el("span", "meta", c.status_label + (c.assigned_to ? " · " + c.assigned_to : "") + " · 等待 ");
      var waited = el("span", "waited");
      waited.setAttribute("data-since", c.created_at);
      meta.appendChild(waited);
      a.appendChild(meta);
      var sla = c.status === "pending"
        ? slaNode("首响", c.first_response_due_at, c.first_response_breached, c.first_response_at)
        : slaNode("解决", c.resolve_due_at, c.resolve_breached, c.resolved_at);
      if (sla) { a.appendChild(sla); }
      li.appendChild(a);
      ul.appendChild(li);
    });
    tick();
  }

  function loadQueue() {
    return api("GET", "/desk/api/queue").then(function (data) { renderQueue(data.conversations); })
      .catch(function (err) { flash(err.message); });
  }

  /* ---- conversation ---- */
  function turnNode(t) {
    var li = el("li", "turn " + t.from);
    li.setAttribute("data-testid", "turn");
    li.setAttribute("data-from", t.from);
    var who = t.from === "customer" ? "客户" : (t.from === "agent" ? (t.agent_name || t.agent) : "小K");
    li.appendChild(el("span", "who", who));
    li.appendChild(el("span", "text", t.text));
    li.appendChild(el("time", null, clock(t.at)));
    return li;
  }

  function noteNode(n) {
    var li = el("li", "turn note");
    li.setAttribute("data-testid", "turn");
    li.setAttribute("data-from", "note");
    li.setAttribute("data-note-id", String(n.id));
    li.appendChild(el("span", "who", "内部备注 · " + n.actor));
    li.appendChild(el("span", "text", n.body));
    li.appendChild(el("time", null, clock(n.at)));
    seenNotes[n.id] = true;
    return li;
  }

  function scrollDown() {
    var t = $("#transcript");
    if (t) { t.scrollTop = t.scrollHeight; }
  }

  function appendTurn(node) {
    var t = $("#transcript");
    if (t) { t.appendChild(node); scrollDown(); }
  }

  function renderHead(c) {
    var head = $("#chat-head");
    if (!head) { return; }
    head.setAttribute("data-status", c.status);
    head.setAttribute("data-assigned-to", c.assigned_to || "");
    var small = $("#chat-title small");
    if (small) {
      small.textContent = "#" + c.id + " · " + c.channel + " · " + c.status_label +
        (c.assigned_to ? " · 负责人 " + c.assigned_to : "");
    }
    $("#claim").hidden = c.status !== "pending";
    $("#resolve").disabled = c.status === "resolved";
    var timers = $("#chat-timers");
    timers.textContent = "";
    [slaNode("首次响应", c.first_response_due_at, c.first_response_breached, c.first_response_at),
     slaNode("解决", c.resolve_due_at, c.resolve_breached, c.resolved_at)].forEach(function (n) {
      if (n) { timers.appendChild(n); timers.appendChild(document.createTextNode(" ")); }
    });
    tick();
  }

  function loadConversation() {
    if (!conversationId) { return Promise.resolve(); }
    return api("GET", "/desk/api/conversations/" + encodeURIComponent(conversationId)).then(function (data) {
      renderHead(data.conversation);
      var items = data.turns.map(function (t) { return { at: new Date(t.at).getTime(), node: turnNode(t) }; });
      seenNotes = {};
      data.timeline.forEach(function (e) {
        if (e.kind === "note") { items.push({ at: new Date(e.at).getTime(), node: noteNode(e) }); }
      });
      items.sort(function (a, b) { return a.at - b.at; });
      var list = $("#transcript");
      list.textContent = "";
      items.forEach(function (item) { list.appendChild(item.node); });
      scrollDown();
    }).catch(function (err) { flash(err.message); });
  }

  function act(button, path, payload, after) {
    if (button) { button.disabled = true; }
    flash("");
    return api("POST", "/desk/api/conversations/" + encodeURIComponent(conversationId) + "/" + path, payload)
      .then(function (data) {
        if (data.warning) { flash(data.warning, "warning"); }
        if (data.conversation) { renderHead(data.conversation); }
        if (after) { after(data); }
        return data;
      })
      .catch(function (err) { flash(err.message); throw err; })
      .finally(function () { if (button) { button.disabled = false; } });
  }

  function expandCanned(textarea) {
    var m = /^\s*(\/?\S+)\s*$/.exec(textarea.value);
    if (!m) { return false; }
    var code = m[1];
    var hit = canned.find(function (c) { return c.code === code || "/" + c.code === code; });
    if (!hit) { return false; }
    textarea.value = hit.body;
    showCanned("");
    return true;
  }

  function showCanned(prefix) {
    var ul = $("#canned-list");
    if (!ul) { return; }
    ul.textContent = "";
    if (!prefix || prefix.charAt(0) !== "/") { ul.hidden = true; return; }
    var matches = canned.filter(function (c) {
      var code = c.code.charAt(0) === "/" ? c.code : "/" + c.code;
      return code.indexOf(prefix) === 0;
    });
    matches.slice(0, 8).forEach(function (c) {
      var li = el("li");
      li.setAttribute("data-code", c.code);
      li.appendChild(el("b", null, c.code));
      li.appendChild(document.createTextNode(" " + c.title + "："));
      li.appendChild(el("span", "meta", c.body));
      li.addEventListener("mousedown", function (ev) {
        ev.preventDefault();
        $("#reply-text").value = c.body;
        ul.hidden = true;
        $("#reply-text").focus();
      });
      ul.appendChild(li);
    });
    ul.hidden = matches.length === 0;
  }

  function wireConversation() {
    if (!conversationId) { return; }
    var reply = $("#reply-text");
    $("#claim").addEventListener("click", function () {
      act(this, "claim", {}, function () { loadConversation(); loadQueue(); }).catch(function () {});
    });
    $("#send").addEventListener("click", function () {
      expandCanned(reply);
      var text = reply.value.trim();
      if (!text) { flash("内容不能为空，且不超过2000字。"); return; }
      act(this, "reply", { text: text }, function () { reply.value = ""; }).catch(function () {});
    });
    reply.addEventListener("keydown", function (ev) {
      if (ev.key === "Tab" || ev.key === " ") {
        if (expandCanned(reply)) { ev.preventDefault(); }
      } else if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        $("#send").click();
      }
    });
    reply.addEventListener("input", function () { showCanned(reply.value.trim()); });
    $("#add-note").addEventListener("click", function () {
      var input = $("#note-text");
      var text = input.value.trim();
      if (!text) { flash("内容不能为空，且不超过2000字。"); return; }
      act(this, "note", { text: text }, function (data) {
        input.value = "";
        if (data.note && !seenNotes[data.note.id]) { appendTurn(noteNode(data.note)); }
      }).catch(function () {});
    });
    $("#transfer").addEventListener("click", function () {
      var to = $("#transfer-to").value;
      if (!to) { flash("请选择要转接的客服。"); return; }
      act(this, "transfer", { to: to }, function () { flash("已转接给 " + to + "。", "info"); loadQueue(); })
        .catch(function () {});
    });
    $("#resolve").addEventListener("click", function () {
      if (!window.confirm("结束会话并交还给机器人？")) { return; }
      act(this, "resolve", {}, function () { loadQueue(); }).catch(function () {});
    });
    api("GET", "/desk/api/staff").then(function (data) {
      var select = $("#transfer-to");
      data.staff.forEach(function (s) {
        if (s.username === me) { return; }
        var option = el("option", null, s.display_name + "（" + s.username + " · " + s.status_label + "）");
        option.value = s.username;
        select.appendChild(option);
      });
    }).catch(function () {});
    api("GET", "/desk/api/canned").then(function (data) { canned = data.canned; }).catch(function () {});
  }

  /* ---- live updates ---- */
  var refreshTimer = null;
  function refreshSoon() {
    if (refreshTimer) { return; }
    refreshTimer = window.setTimeout(function () { refreshTimer = null; loadQueue(); }, 300);
  }

  function connect() {
    if (!window.EventSource) { return; }
    var url = "/desk/events" + (conversationId ? "?conversation=" + encodeURIComponent(conversationId) : "");
    var source = new EventSource(url);
    var first = true;
    var live = $("#live-status");
    source.addEventListener("hello", function () {
      if (live) { live.classList.add("on"); live.title = "实时连接正常"; }
      if (!first) { loadQueue(); loadConversation(); }  // reconnected: catch up
      first = false;
    });
    source.addEventListener("queue", refreshSoon);
    source.addEventListener("activity", refreshSoon);
    source.addEventListener("turn", function (ev) {
      var t = JSON.parse(ev.data);
      if (String(t.escalation_id) === conversationId) { appendTurn(turnNode(t)); }
    });
    source.addEventListener("timeline", function (ev) {
      var e = JSON.parse(ev.data);
      if (String(e.escalation_id) !== conversationId) { return; }
      if (e.kind === "note") {
        if (!seenNotes[e.id]) { appendTurn(noteNode(e)); }
      } else if (e.kind !== "agent_message" && e.kind !== "queue_notice") {
        api("GET", "/desk/api/conversations/" + encodeURIComponent(conversationId))
          .then(function (data) { renderHead(data.conversation); }).catch(function () {});
      }
    });
    source.onerror = function () {
      if (live) { live.classList.remove("on"); live.title = "实时连接中断，正在重连…"; }
    };
  }

  document.querySelectorAll("#transcript [data-note-id]").forEach(function (n) {
    seenNotes[n.getAttribute("data-note-id")] = true;
  });
  wireConversation();
  scrollDown();
  tick();
  window.setInterval(tick, 1000);
  connect();
})();
