"""OpenAI's Realtime API (GA protocol) at /v1/realtime: a persona over one websocket."""
