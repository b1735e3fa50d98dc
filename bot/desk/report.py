"""The weekly complaint and customer report: `python -m bot.desk.report --week 2026-W47 --out DIR`.

Writes DIR/report-2026-W47.md (the figures, the keywords, links to the
charts), DIR/report-2026-W47.json (the same numbers as /desk/api/kpis) and
PNG charts drawn by matplotlib, with a Chinese font when
/usr/share/fonts/truetype/wqy/wqy-microhei.ttc (or KEFU_REPORT_FONT) exists;
without one the charts still render but Chinese labels may show as boxes,
and a warning says so.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from crm_adapter import CRM
from crm_adapter.analytics.complaint_kpis import current_week, dashboard
from crm_adapter.errors import CRMError, InvalidInput

from . import config

log = logging.getLogger("kefu.desk.report")
DEFAULT_FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
CATEGORY_LABELS = {"logistics": "物流配送", "quality": "商品质量", "service": "服务态度", "price": "价格问题",
                   "after_sales": "售后服务", "other": "其他问题"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import font_manager, pyplot

    font = os.environ.get("KEFU_REPORT_FONT") or DEFAULT_FONT
    if Path(font).exists():
        font_manager.fontManager.addfont(font)
        name = font_manager.FontProperties(fname=font).get_name()
        matplotlib.rcParams["font.sans-serif"] = [name, "DejaVu Sans"]
        matplotlib.rcParams["axes.unicode_minus"] = False
    else:
        log.warning("Chinese font %s not found: chart labels may not render (set KEFU_REPORT_FONT)", font)
    return pyplot


def charts(data: dict[str, Any], out: Path) -> list[Path]:
    plt = _pyplot()
    week = data["week"]
    written = []

    weeks = list(data["per_category_per_week"])
    fig, ax = plt.subplots(figsize=(8, 4))
    bottom = [0] * len(weeks)
    for cat, label in CATEGORY_LABELS.items():
        values = [data["per_category_per_week"][w].get(cat, 0) for w in weeks]
        ax.bar(weeks, values, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_title("每周各类投诉数")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    written.append(_save(fig, out / f"categories-{week}.png", plt))

    fig, ax = plt.subplots(figsize=(5, 4))
    counts = data["csat"]["counts"]
    ax.bar(list(counts), list(counts.values()), color="#1463c4")
    ax.set_title("CSAT 分布")
    written.append(_save(fig, out / f"csat-{week}.png", plt))

    fig, ax = plt.subplots(figsize=(6, 4))
    trend = data["csat_trend"]
    ax.plot(list(trend), list(trend.values()), marker="o", color="#16a34a")
    ax.set_ylim(1, 5)
    ax.set_title("CSAT 周均值")
    fig.autofmt_xdate()
    written.append(_save(fig, out / f"csat-trend-{week}.png", plt))
    return written


def _save(fig: Any, path: Path, plt: Any) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _pct(value: Optional[float]) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def markdown(data: dict[str, Any], images: list[Path]) -> str:
    c = data["customer"]
    lines = [f"# 投诉与客户周报 {data['week']}", "", f"统计区间：{data['start']} 至 {data['end']}（北京时间）", "",
             "| 指标 | 数值 |", "|---|---|",
             f"| 投诉数 | {data['complaints']} |",
             f"| 首次响应 中位数 / P90（小时） | {data['first_response']['median_h']} / {data['first_response']['p90_h']} |",
             f"| 解决时长 中位数 / P90（小时） | {data['resolution']['median_h']} / {data['resolution']['p90_h']} |",
             f"| SLA 超时率 | {_pct(data['sla_breach_rate'])} |",
             f"| 重开率 | {_pct(data['reopen_rate'])} |",
             f"| CSAT 均值（{data['csat']['responses']} 条） | {data['csat']['average']} |",
             f"| NPS（{data['nps']['responses']} 条） | {data['nps']['score']} |",
             f"| 转人工率 / 机器人自助解决率 | {_pct(data['automation']['escalation_rate'])} / "
             f"{_pct(data['automation']['automation_rate'])} |",
             f"| 留存率 / 复购率 / 流失率 | {_pct(c['retention_rate'])} / {_pct(c['repurchase_rate'])} / "
             f"{_pct(c['churn_rate'])} |", "", "## 投诉关键词（本周 vs 上周）", "",
             "| 关键词 | 本周 | 上周 | |", "|---|---|---|---|"]
    lines += [f"| {t['word']} | {t['this_week']} | {t['last_week']} | {'上升' if t['rising'] else ''} |"
              for t in data["topics"]]
    lines += ["", "## 图表", ""] + [f"![{p.stem}]({p.name})" for p in images]
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.desk.report", description="Weekly complaint report.")
    parser.add_argument("--week", help="ISO week, e.g. 2026-W47 (default: this week)")
    parser.add_argument("--out", required=True, type=Path, help="directory for the report and charts")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    crm = CRM.from_env()
    try:
        week = args.week or current_week(crm._now())
        data = dashboard(crm, week, config.from_env().events_url)
    except InvalidInput as exc:
        print(f"错误：{exc}", file=sys.stderr)
        return 2
    except CRMError as exc:
        print(f"错误：客服数据库不可用（{type(exc).__name__}）", file=sys.stderr)
        return 1
    finally:
        crm.dispose()
    args.out.mkdir(parents=True, exist_ok=True)
    images = charts(data, args.out)
    (args.out / f"report-{week}.json").write_text(json.dumps(data, ensure_ascii=False, indent=1), "utf-8")
    report = args.out / f"report-{week}.md"
    report.write_text(markdown(data, images), "utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
