"""The agent desk: a small aiohttp web app where support staff take over
escalated chats (see README "Desk").  All state lives in the CRM
(`crm_adapter.servicedesk`) and in Rasa's tracker, so the process can be
restarted at any time."""
