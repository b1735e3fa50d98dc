"""Proactive care: the scheduler process (APScheduler), its campaigns and how messages travel.

`python -m bot.scheduler --help` lists the commands; README "Proactive care"
and docs/care.md describe the whole.
"""
