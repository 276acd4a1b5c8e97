"""When a recurring schedule fires: Azure's recurrence rules as pure functions (docs/publishing.md).

A recurrence is plain data (``ScheduleRecurrence.to_dict()``): ``frequency`` (Minute, Hour, Day,
Week, Month), ``interval``, ``start_time`` (local wall time, ``YYYY-MM-DDThh:mm:ss``, or None),
``time_zone`` (Azure's Windows name), ``hours``, ``minutes``, ``week_days``. Its fires are counted
from an anchor: ``start_time`` in its time zone, or the schedule's creation when it has none.

- Minute and Hour fire every ``interval`` minutes or hours of elapsed time from the anchor.
- Day fires every ``interval`` days, Week on ``week_days`` of every ``interval``-th week (weeks
  start on Monday), Month on the anchor's day of every ``interval``-th month (a month without
  that day is skipped); each at ``hours`` x ``minutes`` of local wall time (the anchor's hour and
  minute when not given), so 09:00 stays 09:00 across a daylight-saving change.
- A wall time that a spring-forward change skips fires at the same offset after the change
  (02:30 becomes 03:30); one that a fall-back change repeats fires once, the first time.
- With ``hours``, ``minutes`` or ``week_days``, a fire at the anchor itself is left out, as Azure
  does ("the first workload runs at the next calculated run time").
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

WEEK_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
FREQUENCIES = ("Minute", "Hour", "Day", "Week", "Month")
START_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"

# Azure's TimeZone names (Windows time zones) -> the IANA zone CLDR maps each to.
WINDOWS_ZONES = {
    "Dateline Standard Time": "Etc/GMT+12",
    "UTC-11": "Etc/GMT+11",
    "Aleutian Standard Time": "America/Adak",
    "Hawaiian Standard Time": "Pacific/Honolulu",
    "Marquesas Standard Time": "Pacific/Marquesas",
    "Alaskan Standard Time": "America/Anchorage",
    "UTC-09": "Etc/GMT+9",
    "Pacific Standard Time (Mexico)": "America/Tijuana",
    "UTC-08": "Etc/GMT+8",
    "Pacific Standard Time": "America/Los_Angeles",
    "US Mountain Standard Time": "America/Phoenix",
    "Mountain Standard Time (Mexico)": "America/Mazatlan",
    "Mountain Standard Time": "America/Denver",
    "Central America Standard Time": "America/Guatemala",
    "Central Standard Time": "America/Chicago",
    "Easter Island Standard Time": "Pacific/Easter",
    "Central Standard Time (Mexico)": "America/Mexico_City",
    "Canada Central Standard Time": "America/Regina",
    "SA Pacific Standard Time": "America/Bogota",
    "Eastern Standard Time (Mexico)": "America/Cancun",
    "Eastern Standard Time": "America/New_York",
    "Haiti Standard Time": "America/Port-au-Prince",
    "Cuba Standard Time": "America/Havana",
    "US Eastern Standard Time": "America/Indiana/Indianapolis",
    "Paraguay Standard Time": "America/Asuncion",
    "Atlantic Standard Time": "America/Halifax",
    "Venezuela Standard Time": "America/Caracas",
    "Central Brazilian Standard Time": "America/Cuiaba",
    "SA Western Standard Time": "America/La_Paz",
    "Pacific SA Standard Time": "America/Santiago",
    "Turks And Caicos Standard Time": "America/Grand_Turk",
    "Newfoundland Standard Time": "America/St_Johns",
    "Tocantins Standard Time": "America/Araguaina",
    "E. South America Standard Time": "America/Sao_Paulo",
    "SA Eastern Standard Time": "America/Cayenne",
    "Argentina Standard Time": "America/Argentina/Buenos_Aires",
    "Greenland Standard Time": "America/Nuuk",
    "Montevideo Standard Time": "America/Montevideo",
    "Saint Pierre Standard Time": "America/Miquelon",
    "Bahia Standard Time": "America/Bahia",
    "UTC-02": "Etc/GMT+2",
    "Mid-Atlantic Standard Time": "Etc/GMT+2",
    "Azores Standard Time": "Atlantic/Azores",
    "Cape Verde Standard Time": "Atlantic/Cape_Verde",
    "UTC": "UTC",
    "Morocco Standard Time": "Africa/Casablanca",
    "GMT Standard Time": "Europe/London",
    "Greenwich Standard Time": "Atlantic/Reykjavik",
    "W. Europe Standard Time": "Europe/Berlin",
    "Central Europe Standard Time": "Europe/Budapest",
    "Romance Standard Time": "Europe/Paris",
    "Central European Standard Time": "Europe/Warsaw",
    "W. Central Africa Standard Time": "Africa/Lagos",
    "Namibia Standard Time": "Africa/Windhoek",
    "Jordan Standard Time": "Asia/Amman",
    "GTB Standard Time": "Europe/Bucharest",
    "Middle East Standard Time": "Asia/Beirut",
    "Egypt Standard Time": "Africa/Cairo",
    "E. Europe Standard Time": "Europe/Chisinau",
    "Syria Standard Time": "Asia/Damascus",
    "West Bank Standard Time": "Asia/Hebron",
    "South Africa Standard Time": "Africa/Johannesburg",
    "FLE Standard Time": "Europe/Kyiv",
    "Turkey Standard Time": "Europe/Istanbul",
    "Israel Standard Time": "Asia/Jerusalem",
    "Kaliningrad Standard Time": "Europe/Kaliningrad",
    "Libya Standard Time": "Africa/Tripoli",
    "Arabic Standard Time": "Asia/Baghdad",
    "Arab Standard Time": "Asia/Riyadh",
    "Belarus Standard Time": "Europe/Minsk",
    "Russian Standard Time": "Europe/Moscow",
    "E. Africa Standard Time": "Africa/Nairobi",
    "Iran Standard Time": "Asia/Tehran",
    "Arabian Standard Time": "Asia/Dubai",
    "Astrakhan Standard Time": "Europe/Astrakhan",
    "Azerbaijan Standard Time": "Asia/Baku",
    "Russia Time Zone 3": "Europe/Samara",
    "Mauritius Standard Time": "Indian/Mauritius",
    "Georgian Standard Time": "Asia/Tbilisi",
    "Caucasus Standard Time": "Asia/Yerevan",
    "Afghanistan Standard Time": "Asia/Kabul",
    "West Asia Standard Time": "Asia/Tashkent",
    "Ekaterinburg Standard Time": "Asia/Yekaterinburg",
    "Pakistan Standard Time": "Asia/Karachi",
    "India Standard Time": "Asia/Kolkata",
    "Sri Lanka Standard Time": "Asia/Colombo",
    "Nepal Standard Time": "Asia/Kathmandu",
    "Central Asia Standard Time": "Asia/Almaty",
    "Bangladesh Standard Time": "Asia/Dhaka",
    "N. Central Asia Standard Time": "Asia/Novosibirsk",
    "Myanmar Standard Time": "Asia/Yangon",
    "SE Asia Standard Time": "Asia/Bangkok",
    "Altai Standard Time": "Asia/Barnaul",
    "W. Mongolia Standard Time": "Asia/Hovd",
    "North Asia Standard Time": "Asia/Krasnoyarsk",
    "Tomsk Standard Time": "Asia/Tomsk",
    "China Standard Time": "Asia/Shanghai",
    "North Asia East Standard Time": "Asia/Irkutsk",
    "Singapore Standard Time": "Asia/Singapore",
    "W. Australia Standard Time": "Australia/Perth",
    "Taipei Standard Time": "Asia/Taipei",
    "Ulaanbaatar Standard Time": "Asia/Ulaanbaatar",
    "North Korea Standard Time": "Asia/Pyongyang",
    "Aus Central W. Standard Time": "Australia/Eucla",
    "Transbaikal Standard Time": "Asia/Chita",
    "Tokyo Standard Time": "Asia/Tokyo",
    "Korea Standard Time": "Asia/Seoul",
    "Yakutsk Standard Time": "Asia/Yakutsk",
    "Cen. Australia Standard Time": "Australia/Adelaide",
    "AUS Central Standard Time": "Australia/Darwin",
    "E. Australia Standard Time": "Australia/Brisbane",
    "AUS Eastern Standard Time": "Australia/Sydney",
    "West Pacific Standard Time": "Pacific/Port_Moresby",
    "Tasmania Standard Time": "Australia/Hobart",
    "Vladivostok Standard Time": "Asia/Vladivostok",
    "Lord Howe Standard Time": "Australia/Lord_Howe",
    "Bougainville Standard Time": "Pacific/Bougainville",
    "Russia Time Zone 10": "Asia/Srednekolymsk",
    "Magadan Standard Time": "Asia/Magadan",
    "Norfolk Standard Time": "Pacific/Norfolk",
    "Sakhalin Standard Time": "Asia/Sakhalin",
    "Central Pacific Standard Time": "Pacific/Guadalcanal",
    "Russia Time Zone 11": "Asia/Kamchatka",
    "New Zealand Standard Time": "Pacific/Auckland",
    "UTC+12": "Etc/GMT-12",
    "Fiji Standard Time": "Pacific/Fiji",
    "Kamchatka Standard Time": "Asia/Kamchatka",
    "Chatham Islands Standard Time": "Pacific/Chatham",
    "Tonga Standard Time": "Pacific/Tongatapu",
    "Samoa Standard Time": "Pacific/Apia",
    "Line Islands Standard Time": "Pacific/Kiritimati",
}


def zone(time_zone: str | None) -> ZoneInfo:
    """The IANA zone of Azure's time zone name (UTC when None)."""
    return ZoneInfo(WINDOWS_ZONES[time_zone or "UTC"])


def anchor(recurrence: dict, created_at: float) -> datetime:
    """The instant (aware, UTC) fires are counted from: ``start_time`` in its zone, or the creation."""
    if recurrence.get("start_time"):
        local = datetime.strptime(recurrence["start_time"], START_TIME_FORMAT)
        return _aware(local, zone(recurrence.get("time_zone"))).astimezone(UTC)
    return datetime.fromtimestamp(created_at, UTC)


def describe(recurrence: dict, created_at: float) -> str:
    """When the recurrence fires, in words: "every day at 02:30 (Pacific Standard Time)", "every 2 weeks
    on Monday, Friday at 09:00, 17:00 (UTC)", "every 5 minutes from 2026-01-01 00:00 (UTC)"."""
    interval, frequency = int(recurrence["interval"]), recurrence["frequency"]
    unit = frequency.lower()
    every = f"every {unit}" if interval == 1 else f"every {interval} {unit}s"
    local = _wall(recurrence, anchor(recurrence, created_at), zone(recurrence.get("time_zone")))
    where = f"({recurrence.get('time_zone') or 'UTC'})"
    if frequency in ("Minute", "Hour"):
        return f"{every} from {local.strftime('%Y-%m-%d')} {_hh_mm(local.hour, local.minute, local.second)} {where}"
    patterned = any(recurrence.get(key) is not None for key in ("hours", "minutes", "week_days"))
    second = 0 if patterned else local.second
    times = ", ".join(_hh_mm(h, m, second) for h in sorted(recurrence.get("hours") or [local.hour])
                      for m in sorted(recurrence.get("minutes") or [local.minute]))  # fmt: skip
    if frequency == "Week":
        days = recurrence.get("week_days") or [WEEK_DAYS[local.weekday()]]
        every += " on " + ", ".join(sorted(days, key=WEEK_DAYS.index))
    elif frequency == "Month":
        every += f" on day {local.day}"
    return f"{every} at {times} {where}"


def _wall(recurrence: dict, start: datetime, tz: ZoneInfo) -> datetime:
    """The anchor's local wall time (naive): ``start_time`` as written, so that 02:30 on a night a
    spring-forward change skips (fired at 03:30) is still 02:30 on the days after; else the
    creation's."""
    if recurrence.get("start_time"):
        return datetime.strptime(recurrence["start_time"], START_TIME_FORMAT)
    return start.astimezone(tz).replace(tzinfo=None)


def _hh_mm(hour: int, minute: int, second: int) -> str:
    return f"{hour:02d}:{minute:02d}" + (f":{second:02d}" if second else "")


def fires(recurrence: dict, created_at: float, after: float) -> Iterator[float]:
    """The fire times (epoch seconds) of the recurrence strictly after ``after``, in order, for ever."""
    start = anchor(recurrence, created_at)
    interval = int(recurrence["interval"])
    frequency = recurrence["frequency"]
    if frequency in ("Minute", "Hour"):
        step = interval * (60 if frequency == "Minute" else 3600)
        first = start.timestamp()
        k = max(0, math.floor((after - first) / step) + 1)
        while True:
            yield first + k * step
            k += 1
    tz = zone(recurrence.get("time_zone"))
    local_start = _wall(recurrence, start, tz)
    patterned = any(recurrence.get(key) is not None for key in ("hours", "minutes", "week_days"))
    hours = sorted(recurrence.get("hours") or [local_start.hour])
    minutes = sorted(recurrence.get("minutes") or [local_start.minute])
    floor = max(after, start.timestamp() - 1)  # nothing before the anchor
    since = datetime.fromtimestamp(floor, tz).date() - timedelta(days=1)
    for day in _days(frequency, interval, recurrence.get("week_days"), local_start.date(), since):
        if day < since:
            continue
        seen: set[float] = set()
        for hour in hours:
            for minute in minutes:
                second, micro = (0, 0) if patterned else (local_start.second, local_start.microsecond)
                at = _aware(datetime(day.year, day.month, day.day, hour, minute, second, micro), tz).timestamp()
                if at > floor and at not in seen and not (patterned and at == start.timestamp()):
                    seen.add(at)
        yield from sorted(seen)


def latest_due(recurrence: dict, created_at: float, after: float, now: float) -> float | None:
    """The last fire time in ``(after, now]``, or None: the one run a missed stretch collapses to."""
    last = None
    period = {"Minute": 60, "Hour": 3600, "Day": 86400, "Week": 7 * 86400}
    if recurrence["frequency"] == "Month":  # months without its day have none: on 29 February, years apart
        since = after
    else:  # every period holds a fire, so the latest one is within two periods of now
        since = max(after, now - 2 * period[recurrence["frequency"]] * int(recurrence["interval"]) - 86400)
    for at in fires(recurrence, created_at, since):
        if at > now:
            return last
        last = at
    return last


def _days(frequency: str, interval: int, week_days: list[str] | None, first: date, since: date) -> Iterator[date]:
    """The local dates a Day, Week or Month recurrence fires on, from the anchor's date ``first`` on,
    beginning with the period that holds ``since`` (the periods before it skipped in one step: a
    start time years back must not cost a runner's every tick a walk over those years)."""
    if frequency == "Day":
        day = first + timedelta(days=max(0, (since - first).days // interval * interval))
        while True:
            yield day
            day += timedelta(days=interval)
    if frequency == "Week":
        wanted = {WEEK_DAYS.index(d) for d in week_days} if week_days else {first.weekday()}
        monday = first - timedelta(days=first.weekday())
        monday += timedelta(weeks=max(0, (since - monday).days // 7 // interval * interval))
        while True:
            for offset in sorted(wanted):
                day = monday + timedelta(days=offset)
                if day >= first:
                    yield day
            monday += timedelta(weeks=interval)
    skipped = max(0, ((since.year - first.year) * 12 + since.month - first.month) // interval * interval)
    year, month = first.year + (first.month - 1 + skipped) // 12, (first.month - 1 + skipped) % 12 + 1
    while True:  # Month
        if first.day <= calendar.monthrange(year, month)[1]:
            yield date(year, month, first.day)
        month += interval
        year, month = year + (month - 1) // 12, (month - 1) % 12 + 1


def _aware(local: datetime, tz: ZoneInfo) -> datetime:
    """``local`` wall time in ``tz``. ``fold=0`` takes the offset in force before a change: a time a
    spring-forward change skips lands one gap later (02:30 is 03:30), one a fall-back change
    repeats is its first occurrence."""
    return local.replace(tzinfo=tz, fold=0)
