/*
 * Kefu desk: helpers shared by desk.js and manager.js (loaded before them).
 * Customer text only ever goes into the page through textContent.
 */
(function () {
  "use strict";

  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var CSRF = csrfMeta ? csrfMeta.getAttribute("content") : "";

  function $(sel) { return document.querySelector(sel); }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function flash(message, kind) {
    var box = $("#flash");
    if (!box) { return; }
    if (!message) { box.hidden = true; box.textContent = ""; return; }
    box.textContent = message;
    box.className = "flash " + (kind || "error");
    box.hidden = false;
  }

  function api(method, url, payload) {
    var options = { method: method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
    if (method !== "GET") {
      options.headers["Content-Type"] = "application/json";
      options.headers["X-CSRF-Token"] = CSRF;
      options.body = JSON.stringify(payload || {});
    }
    return fetch(url, options).then(function (response) {
      if (response.status === 401) { window.location.href = "/desk/login"; throw new Error("请先登录。"); }
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) { throw new Error(data.error || ("请求失败（" + response.status + "）")); }
        return data;
      });
    });
  }

  function clock(iso, empty) {
    if (!iso) { return empty === undefined ? "" : empty; }
    var d = new Date(iso);
    function two(n) { return (n < 10 ? "0" : "") + n; }
    return two(d.getMonth() + 1) + "-" + two(d.getDate()) + " " + two(d.getHours()) + ":" + two(d.getMinutes());
  }
  window.KefuDesk = { csrf: CSRF, $: $, el: el, flash: flash, api: api, clock: clock };
})();
