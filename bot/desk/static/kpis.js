/*
 * Kefu desk, KPI page (/desk/kpis): numbers from /desk/api/kpis, charts by
 * the vendored Chart.js (static/vendor). Text only via textContent.
 */
(function () {
  "use strict";

  var CATEGORY = { logistics: "物流配送", quality: "商品质量", service: "服务态度", price: "价格问题",
    after_sales: "售后服务", other: "其他问题" };
  var TIER = { core: "核心客户", potential: "潜力客户", low: "低价值客户" };
  var COLORS = ["#1463c4", "#f59e0b", "#16a34a", "#b42318", "#7c3aed", "#64748b"];

  function el(tag, text) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function pct(v) { return v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%"; }
  function num(v, suffix) { return v === null || v === undefined ? "—" : String(v) + (suffix || ""); }

  function stats(d) {
    var c = d.customer;
    var items = [
      ["complaints", "本周投诉", num(d.complaints)],
      ["first_response_median", "首次响应中位数", num(d.first_response.median_h, " 小时")],
      ["first_response_p90", "首次响应 P90", num(d.first_response.p90_h, " 小时")],
      ["resolution_median", "解决时长中位数", num(d.resolution.median_h, " 小时")],
      ["resolution_p90", "解决时长 P90", num(d.resolution.p90_h, " 小时")],
      ["sla_breach_rate", "SLA 超时率", pct(d.sla_breach_rate)],
      ["reopen_rate", "重开率", pct(d.reopen_rate)],
      ["csat_average", "CSAT 均值", num(d.csat.average)],
      ["nps", "NPS", num(d.nps.score)],
      ["escalation_rate", "转人工率", pct(d.automation.escalation_rate)],
      ["automation_rate", "机器人自助解决率", pct(d.automation.automation_rate)],
      ["retention_rate", "留存率", pct(c.retention_rate)],
      ["repurchase_rate", "复购率", pct(c.repurchase_rate)],
      ["churn_rate", "流失率", pct(c.churn_rate)]
    ];
    var box = document.getElementById("kpi-stats");
    box.textContent = "";
    items.forEach(function (item) {
      var stat = el("div");
      stat.className = "stat";
      stat.setAttribute("data-key", item[0]);
      stat.appendChild(el("b", item[2]));
      stat.appendChild(el("span", item[1]));
      box.appendChild(stat);
    });
  }

  function charts(d) {
    if (typeof Chart === "undefined") { return; }
    var weeks = Object.keys(d.per_category_per_week);
    var datasets = Object.keys(CATEGORY).map(function (cat, i) {
      return { label: CATEGORY[cat], backgroundColor: COLORS[i % COLORS.length],
        data: weeks.map(function (w) { return d.per_category_per_week[w][cat] || 0; }) };
    });
    new Chart(document.getElementById("chart-categories"), { type: "bar",
      data: { labels: weeks, datasets: datasets },
      options: { animation: false, scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } } });
    new Chart(document.getElementById("chart-csat"), { type: "bar",
      data: { labels: ["1", "2", "3", "4", "5"], datasets: [{ label: "评价数", backgroundColor: "#1463c4",
        data: ["1", "2", "3", "4", "5"].map(function (s) { return d.csat.counts[s]; }) }] },
      options: { animation: false, scales: { y: { beginAtZero: true } } } });
    var trendWeeks = Object.keys(d.csat_trend);
    new Chart(document.getElementById("chart-csat-trend"), { type: "line",
      data: { labels: trendWeeks, datasets: [{ label: "CSAT", borderColor: "#16a34a",
        data: trendWeeks.map(function (w) { return d.csat_trend[w]; }) }] },
      options: { animation: false, scales: { y: { min: 1, max: 5 } } } });
  }

  function tables(d) {
    var body = document.querySelector("#topics-table tbody");
    body.textContent = "";
    d.topics.forEach(function (t) {
      var tr = el("tr");
      tr.setAttribute("data-word", t.word);
      [t.word, t.this_week, t.last_week, t.rising ? "上升" : ""].forEach(function (v, i) {
        var td = el("td", v);
        if (i === 3 && t.rising) { td.className = "rising"; }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    var clv = document.querySelector("#clv-table tbody");
    clv.textContent = "";
    d.customer.clv_by_tier.forEach(function (t) {
      var tr = el("tr");
      [TIER[t.tier] || t.tier, t.customers, t.clv_mean.toFixed(2), t.clv_p50.toFixed(2), t.clv_p90.toFixed(2)]
        .forEach(function (v) { tr.appendChild(el("td", v)); });
      clv.appendChild(tr);
    });
  }

  var week = document.body.getAttribute("data-week");
  fetch("/desk/api/kpis?week=" + encodeURIComponent(week), { credentials: "same-origin", headers: { "Accept": "application/json" } })
    .then(function (r) { return r.json().then(function (d) { if (!r.ok) { throw new Error(d.error || "加载失败"); } return d; }); })
    .then(function (d) { stats(d); charts(d); tables(d); document.body.setAttribute("data-loaded", "1"); })
    .catch(function (err) {
      var box = document.getElementById("flash");
      box.hidden = false;
      box.textContent = err.message;
    });
}());
