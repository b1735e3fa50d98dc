/*
 * Kefu desk, manager view (/desk/manager). Data only via textContent.
 * Hooks: #stats (.stat[data-key]), #staff-table tbody tr[data-username],
 *   #chats-table tbody tr[data-escalation-id] with select.assign-to + button.assign (pending chats),
 *   #canned-form #canned-code #canned-title #canned-body #canned-save,
 *   #canned-table tbody tr[data-code] button.edit, #flash.
 */
(function () {
  "use strict";

  var K = window.KefuDesk, $ = K.$, el = K.el, flash = K.flash, api = K.api;
  function clock(iso) { return K.clock(iso, "—"); }
  var staff = [];

  function row(cells) {
    var tr = el("tr");
    cells.forEach(function (c) {
      var td = el("td");
      if (c instanceof Node) { td.appendChild(c); } else { td.textContent = c === null || c === undefined ? "" : String(c); }
      tr.appendChild(td);
    });
    return tr;
  }

  var LABELS = [["pending", "排队中"], ["open", "处理中"], ["first_response_breached", "首响超时"],
    ["resolve_breached", "解决超时"], ["resolved_today", "今日已解决"], ["median_first_response_s", "首响中位数（秒）"],
    ["csat_avg_today", "今日CSAT"], ["agents_online", "在线客服"]];

  function render(data) {
    var stats = $("#stats");
    stats.textContent = "";
    LABELS.forEach(function (pair) {
      var box = el("div", "stat");
      box.setAttribute("data-key", pair[0]);
      var value = data.stats[pair[0]];
      if (typeof value === "number" && !Number.isInteger(value)) { value = value.toFixed(1); }
      box.appendChild(el("b", null, value === null ? "—" : value));
      box.appendChild(el("span", null, pair[1]));
      if (/breached/.test(pair[0]) && data.stats[pair[0]] > 0) { box.classList.add("breached"); }
      stats.appendChild(box);
    });
    staff = data.staff.filter(function (s) { return s.active; });
    var tbody = $("#staff-table tbody");
    tbody.textContent = "";
    data.staff.forEach(function (s) {
      var tr = row([s.username, s.display_name, s.role_label, s.active ? s.status_label : "已停用", clock(s.last_seen_at), s.max_open]);
      tr.setAttribute("data-username", s.username);
      tbody.appendChild(tr);
    });
    var chats = $("#chats-table tbody");
    chats.textContent = "";
    data.conversations.forEach(function (c) {
      var link = el("a", null, "#" + c.id);
      link.href = "/desk/c/" + encodeURIComponent(c.id);
      var sla = el("span", "sla" + ((c.first_response_breached || c.resolve_breached) ? " breached" : ""),
        (c.first_response_breached ? "首响超时 " : "") + (c.resolve_breached ? "解决超时 " : "") + "至 " + clock(c.resolve_due_at));
      var assignCell = el("span");
      if (c.status === "pending") {
        var select = el("select", "assign-to");
        select.appendChild(el("option", null, "选择客服…")).value = "";
        staff.forEach(function (s) {
          var o = el("option", null, s.display_name + "（" + s.username + "）");
          o.value = s.username;
          select.appendChild(o);
        });
        var button = el("button", "assign", "分配");
        button.addEventListener("click", function () {
          if (!select.value) { flash("请选择客服。"); return; }
          api("POST", "/desk/api/manager/assign", { escalation_id: String(c.id), to: select.value })
            .then(function (res) { flash(res.warning || "已分配。", res.warning ? "warning" : "info"); load(); })
            .catch(function (err) { flash(err.message); });
        });
        assignCell.appendChild(select);
        assignCell.appendChild(button);
      }
      var tr = row([link, c.customer_name || "未识别客户", c.status_label, c.priority_label + (c.callback ? " · 回电" : ""),
        c.reason_label, c.assigned_to || "—", sla, assignCell]);
      tr.setAttribute("data-escalation-id", String(c.id));
      chats.appendChild(tr);
    });
  }

  function renderCanned(list) {
    var tbody = $("#canned-table tbody");
    tbody.textContent = "";
    list.forEach(function (c) {
      var edit = el("button", "edit", "编辑");
      edit.addEventListener("click", function () {
        $("#canned-code").value = c.code;
        $("#canned-title").value = c.title;
        $("#canned-body").value = c.body;
      });
      var tr = row([c.code, c.title, c.body, edit]);
      tr.setAttribute("data-code", c.code);
      tbody.appendChild(tr);
    });
  }

  function load() {
    api("GET", "/desk/api/manager/overview").then(render).catch(function (err) { flash(err.message); });
    api("GET", "/desk/api/canned").then(function (d) { renderCanned(d.canned); }).catch(function () {});
  }

  $("#canned-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    api("POST", "/desk/api/manager/canned", {
      code: $("#canned-code").value.trim(), title: $("#canned-title").value.trim(), body: $("#canned-body").value
    }).then(function () { flash("已保存。", "info"); $("#canned-form").reset(); load(); })
      .catch(function (err) { flash(err.message); });
  });

  load();
  if (window.EventSource) {
    var pending = null;
    var source = new EventSource("/desk/events");
    var live = $("#live-status");
    source.addEventListener("hello", function () { if (live) { live.classList.add("on"); } load(); });
    source.addEventListener("queue", function () {
      if (!pending) { pending = window.setTimeout(function () { pending = null; load(); }, 500); }
    });
    source.onerror = function () { if (live) { live.classList.remove("on"); } };
  }
  window.setInterval(load, 30000);
})();
