/* Reads the page's inert JSON configuration and mounts the widget (no inline script: CSP). */
(function () {
  "use strict";
  var node = document.getElementById("kefu-config");
  var config = node ? JSON.parse(node.textContent) : {};
  var user = document.getElementById("shop-user");
  if (user) user.textContent = config.token ? "已登录：张伟" : "游客";
  window.kefuWidget = window.KefuWidget.mount(config);
})();
