"""Which greeting occasions fall on a China calendar day.

Why libraries and not a table of dates: lunar festivals move every year and
the State Council publishes statutory holidays (with their make-up working
days) each winter, so hand-typed dates go wrong silently. `lunar_python`
converts lunar dates; `chinese_calendar` knows the published statutory
holidays -- and raises NotImplementedError for a year it does not know yet
(its package must be updated each December): we then log a warning and skip
statutory occasions for that day rather than crash the whole sweep.
"""
from __future__ import annotations

import calendar
from datetime import date, timedelta
from typing import Optional

from .masking import guard_logger

log = guard_logger(__name__)

#: Lunar festivals: key -> (lunar month, lunar day, Chinese name).
LUNAR_FESTIVALS: dict[str, tuple[int, int, str]] = {
    "spring_festival": (1, 1, "春节"),
    "lantern": (1, 15, "元宵节"),
    "dragon_boat": (5, 5, "端午节"),
    "mid_autumn": (8, 15, "中秋节"),
}

#: chinese_calendar's English holiday names -> (key, Chinese name).
STATUTORY_NAMES: dict[str, tuple[str, str]] = {
    "New Year's Day": ("new_year", "元旦"),
    "Spring Festival": ("spring_festival", "春节"),
    "Tomb-sweeping Day": ("tomb_sweeping", "清明节"),
    "Labour Day": ("labour_day", "劳动节"),
    "Dragon Boat Festival": ("dragon_boat", "端午节"),
    "National Day": ("national_day", "国庆节"),
    "Mid-autumn Festival": ("mid_autumn", "中秋节"),
}


def lunar_festival_date(key: str, year: int) -> date:
    """The Gregorian date of a lunar festival in the lunar year that starts in ``year``."""
    from lunar_python import Lunar

    month, day, _ = LUNAR_FESTIVALS[key]
    solar = Lunar.fromYmd(year, month, day).getSolar()
    return date(solar.getYear(), solar.getMonth(), solar.getDay())


def lunar_festival_on(day: date) -> Optional[str]:
    """The lunar festival falling on ``day`` (its key), or None."""
    for key in LUNAR_FESTIVALS:
        # A festival's lunar year began in the same Gregorian year, or the one before
        # for dates in January/February (e.g. 元宵 of a late 春节).
        for year in (day.year, day.year - 1):
            if lunar_festival_date(key, year) == day:
                return key
    return None


def statutory_holiday_starting(day: date) -> Optional[str]:
    """The statutory holiday whose official break starts on ``day`` (its key), or None.

    None also when the library has no data for the year (logged once per call).
    """
    import chinese_calendar

    try:
        on, name = chinese_calendar.get_holiday_detail(day)
        if not on or name is None:
            return None
        before_on, before_name = chinese_calendar.get_holiday_detail(day - timedelta(days=1))
    except NotImplementedError:
        log.warning("chinese_calendar has no statutory holidays for %s; statutory greetings skipped", day.year)
        return None
    if before_on and before_name == name:
        return None
    entry = STATUTORY_NAMES.get(str(name))
    return entry[0] if entry else None


def holiday_name_zh(key: str) -> str:
    if key in LUNAR_FESTIVALS:
        return LUNAR_FESTIVALS[key][2]
    for stat_key, name in STATUTORY_NAMES.values():
        if stat_key == key:
            return name
    return key


def birthday_in_year(birthday: date, year: int) -> date:
    """The day a birthday is celebrated in ``year``.

    29 February in a year without one is celebrated on 28 February: still in
    the customer's birth month, and a greeting a day early reads as thoughtful
    where one on 1 March reads as late.
    """
    if birthday.month == 2 and birthday.day == 29 and not calendar.isleap(year):
        return date(year, 2, 28)
    return birthday.replace(year=year)


def birthday_month_days(day: date) -> list[tuple[int, int]]:
    """The (month, day) birthdays celebrated on ``day``: itself, plus 29 Feb on a
    non-leap 28 Feb."""
    days = [(day.month, day.day)]
    if day.month == 2 and day.day == 28 and not calendar.isleap(day.year):
        days.append((2, 29))
    return days
