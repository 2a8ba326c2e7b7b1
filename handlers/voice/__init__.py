"""Voice channels: the FastRTC Stream, its turn-taking and the websocket route."""
