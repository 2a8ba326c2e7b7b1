"""Settings read once from the environment.

Every knob has a sane offline default, so `python app.py` works with no variables set.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent


def env_float(env: Mapping[str, str], name: str, default: float) -> float:
    """A number from an environment mapping; a clear error names a bad variable."""
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


def _env_float(name: str, default: float) -> float:
    return env_float(os.environ, name, default)


def _env_int(name: str, default: int) -> int:
    return int(_env_float(name, default))


def _env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = (os.environ.get(name) or default).strip().lower()
    if raw not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _env_path(name: str, default: Path) -> Path:
    raw = os.environ.get(name)
    return Path(raw).expanduser() if raw else default


@dataclass(frozen=True)
class VoiceSettings:
    """Turn-taking and audio rates of the voice Stream."""

    input_sample_rate: int = 16_000  # what VAD and Whisper want; WebRTC input is resampled to it
    output_sample_rate: int = 24_000  # what cloud TTS vendors stream natively
    end_of_turn_silence_s: float = 0.5  # "silence" end of turn: the trailing silence that ends it
    min_speech_s: float = 0.2  # speech needed before a turn counts as started
    # "smart": after a short silence the end-of-turn model (Smart Turn v3.2) judges whether
    # the user is done; if not, the turn ends at the fallback silence (bench/end_of_turn.py).
    end_of_turn: str = "smart"
    # The model is asked as the pause starts, beside the early transcript, so both verdicts
    # are in about when the shortest silence that may end a turn has passed. Its "finished"
    # ends a turn no sooner than that: Smart Turn, which Pipecat runs after 0.2 s of silence,
    # alone calls "can you tell me about the" finished (the early transcript's words veto it).
    end_of_turn_check_silence_s: float = 0.1
    end_of_turn_earliest_s: float = 0.2
    end_of_turn_fallback_silence_s: float = 1.2
    end_of_turn_threshold: float = 0.5
    # 8 kHz phone audio fools the model more: ask for more certainty, wait longer.
    phone_end_of_turn_threshold: float = 0.7
    phone_end_of_turn_fallback_silence_s: float = 1.5
    # Asked at 0.1 s, the model called fewer phone turns finished (median 0.42 s against 0.31
    # to the end of a question, bench/end_of_turn.py): the phone asks at 0.2 s, as before.
    phone_end_of_turn_check_silence_s: float = 0.2
    max_continuous_speech_s: float = 30.0  # endless noise must not grow the buffer forever
    speech_probability: float = 0.5
    concurrency_limit: int = 4
    # Speak the reply's first clause, and have the local model read the prompt during the
    # pause; "0": the first whole sentence, nothing read before the turn (to compare).
    early_reply: bool = True

    @classmethod
    def from_env(cls) -> "VoiceSettings":
        return cls(
            early_reply=_env_choice("COZY_EARLY_REPLY", "1", ("1", "0")) == "1",
            end_of_turn_silence_s=_env_float("COZY_END_OF_TURN_SILENCE_S", cls.end_of_turn_silence_s),
            end_of_turn=_env_choice("COZY_END_OF_TURN", cls.end_of_turn, ("smart", "silence")),
            end_of_turn_check_silence_s=_env_float("COZY_END_OF_TURN_CHECK_SILENCE_S",
                                                   cls.end_of_turn_check_silence_s),
            end_of_turn_earliest_s=_env_float("COZY_END_OF_TURN_EARLIEST_S", cls.end_of_turn_earliest_s),
            end_of_turn_fallback_silence_s=_env_float("COZY_END_OF_TURN_FALLBACK_SILENCE_S",
                                                      cls.end_of_turn_fallback_silence_s),
            end_of_turn_threshold=_env_float("COZY_END_OF_TURN_THRESHOLD", cls.end_of_turn_threshold),
            phone_end_of_turn_threshold=_env_float("COZY_PHONE_END_OF_TURN_THRESHOLD",
                                                   cls.phone_end_of_turn_threshold),
            phone_end_of_turn_check_silence_s=_env_float("COZY_PHONE_END_OF_TURN_CHECK_SILENCE_S",
                                                         cls.phone_end_of_turn_check_silence_s),
            phone_end_of_turn_fallback_silence_s=_env_float("COZY_PHONE_END_OF_TURN_FALLBACK_SILENCE_S",
                                                            cls.phone_end_of_turn_fallback_silence_s),
            min_speech_s=_env_float("COZY_MIN_SPEECH_S", cls.min_speech_s),
            max_continuous_speech_s=_env_float("COZY_MAX_CONTINUOUS_SPEECH_S", cls.max_continuous_speech_s),
            speech_probability=_env_float("COZY_SPEECH_PROBABILITY", cls.speech_probability),
            concurrency_limit=_env_int("COZY_CONCURRENCY_LIMIT", cls.concurrency_limit),
        )


@dataclass(frozen=True)
class ModelSettings:
    """Which offline model serves each stage, and optional local overrides.

    An override path replaces the shipped file; a user bringing their own model
    is trusted, so overrides are not checked against our pinned hashes.
    """

    llm: str = "qwen2.5-1.5b"  # or "smollm2-135m" (fast, weak)
    llm_path: Path | None = None
    stt_path: Path | None = None  # a faster-whisper (CTranslate2) folder with tokenizer.json
    tts_voice_path: Path | None = None  # a Piper .onnx with its .onnx.json beside it
    vad_path: Path | None = None  # a Silero v5 .onnx
    end_of_turn_path: Path | None = None  # a Smart Turn v3 .onnx
    llm_threads: int = 2  # reading a prompt (batches)
    # Writing a reply (one token at a time). On two cores, two threads write 3x slower the
    # moment anything else runs (the voice's own frames, VAD, TTS): llama.cpp's threads
    # meet at a barrier every layer, and one descheduled thread stalls the other. One
    # thread fewer than the cores leaves the voice a core (bench/llm_threads.py).
    llm_decode_threads: int = 1
    # Whisper tiny.en (English) too: one thread transcribes a spoken turn as fast as two alone on
    # two cores, and faster beside the end-of-turn model, which runs at the same moment
    # (bench/stt_window.py). The multilingual model keeps llm_threads (not measured).
    stt_threads: int = 1
    # "short": Whisper encodes a short clip in an 8 s window (multilingual: 10 s), not 30 s
    # (providers/offline/stt.py)
    stt_window: str = "short"
    llm_context_tokens: int = 4096
    # RAM for evaluated prompt prefixes (persona prompt + tools), counted in full.
    llm_prompt_cache_mb: int = 512
    # The fair queue in front of each local model (see providers/local_queue.py).
    local_queue_max: int = 8  # requests waiting, all users together
    local_queue_per_user: int = 2  # requests one user may have waiting
    local_queue_max_wait_s: float = 90.0
    # Load the multilingual Whisper and Kokoro in the background once the server is up (~4 s
    # of CPU); False: the first turn that needs one loads it.
    preload: bool = True

    @classmethod
    def from_env(cls) -> "ModelSettings":
        def opt(name: str) -> Path | None:
            raw = os.environ.get(name)
            return Path(raw).expanduser() if raw else None

        return cls(
            llm=os.environ.get("COZY_LLM", cls.llm),
            llm_path=opt("COZY_LLM_PATH"),
            stt_path=opt("COZY_STT_PATH"),
            tts_voice_path=opt("COZY_TTS_VOICE_PATH"),
            vad_path=opt("COZY_VAD_PATH"),
            end_of_turn_path=opt("COZY_END_OF_TURN_PATH"),
            llm_threads=_env_int("COZY_LLM_THREADS", min(4, os.cpu_count() or 2)),
            llm_decode_threads=_env_int("COZY_LLM_DECODE_THREADS", max(1, min(4, (os.cpu_count() or 2) - 1))),
            stt_threads=_env_int("COZY_STT_THREADS", max(1, min(4, (os.cpu_count() or 2) - 1))),
            stt_window=_env_choice("COZY_STT_WINDOW", cls.stt_window, ("short", "full")),
            llm_context_tokens=_env_int("COZY_LLM_CONTEXT_TOKENS", cls.llm_context_tokens),
            llm_prompt_cache_mb=_env_int("COZY_LLM_PROMPT_CACHE_MB", cls.llm_prompt_cache_mb),
            local_queue_max=_env_int("COZY_LOCAL_QUEUE_MAX", cls.local_queue_max),
            local_queue_per_user=_env_int("COZY_LOCAL_QUEUE_PER_USER", cls.local_queue_per_user),
            local_queue_max_wait_s=_env_float("COZY_LOCAL_QUEUE_MAX_WAIT_S", cls.local_queue_max_wait_s),
            preload=os.environ.get("COZY_PRELOAD_MODELS", "1").strip().lower() not in ("0", "false", "no", "off"),
        )


@dataclass(frozen=True)
class ContextSettings:
    """Per-engine time limits of the context phase (seconds)."""

    knowledge_timeout_s: float = 0.5
    profile_timeout_s: float = 0.3
    memory_timeout_s: float = 0.4

    @classmethod
    def from_env(cls) -> "ContextSettings":
        return cls(
            knowledge_timeout_s=_env_float("COZY_KNOWLEDGE_TIMEOUT_S", cls.knowledge_timeout_s),
            profile_timeout_s=_env_float("COZY_PROFILE_TIMEOUT_S", cls.profile_timeout_s),
            memory_timeout_s=_env_float("COZY_MEMORY_TIMEOUT_S", cls.memory_timeout_s),
        )


@dataclass(frozen=True)
class VisitorLimits:
    """What one visitor of a public server may use (the global limits stay on top)."""

    voice_minutes_per_hour: float = 30.0
    voice_connections: int = 1  # open at once, per visitor
    messages_per_minute: int = 20  # typed and spoken turns together
    upload_bytes: int = 2_000_000

    @classmethod
    def from_env(cls) -> "VisitorLimits":
        return cls(
            voice_minutes_per_hour=_env_float("COZY_VISITOR_VOICE_MINUTES_PER_HOUR", cls.voice_minutes_per_hour),
            voice_connections=_env_int("COZY_VISITOR_VOICE_CONNECTIONS", cls.voice_connections),
            messages_per_minute=_env_int("COZY_VISITOR_MESSAGES_PER_MINUTE", cls.messages_per_minute),
            upload_bytes=_env_int("COZY_VISITOR_UPLOAD_BYTES", cls.upload_bytes),
        )


@dataclass(frozen=True)
class TurnServerSettings:
    """ICE servers for WebRTC behind NAT (a Space always is): our own TURN, or HF's via HF_TOKEN."""

    urls: tuple[str, ...] = ()
    username: str | None = None
    credential: str | None = field(default=None, repr=False)
    hf_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls) -> "TurnServerSettings":
        urls = tuple(u.strip() for u in os.environ.get("COZY_TURN_URLS", "").split(",") if u.strip())
        return cls(urls, os.environ.get("COZY_TURN_USERNAME") or None,
                   os.environ.get("COZY_TURN_CREDENTIAL") or None, os.environ.get("HF_TOKEN") or None)


@dataclass(frozen=True)
class ModerationSettings:
    """The moderation chain in front of and behind the model (providers/moderation)."""

    timeout_s: float = 2.0
    openai_model: str = "omni-moderation-latest"

    @classmethod
    def from_env(cls) -> "ModerationSettings":
        return cls(timeout_s=_env_float("COZY_MODERATION_TIMEOUT_S", cls.timeout_s),
                   openai_model=os.environ.get("COZY_MODERATION_MODEL", cls.openai_model))


@dataclass(frozen=True)
class PhoneSettings:
    """Phone calls: your own Twilio number (handlers/phone/telephone.py), or FastRTC's fastphone."""

    mode: str = ""  # "fastphone": also serve the Stream through FastRTC's shared phone number
    public_url: str | None = None  # https://host as Twilio reaches us (signatures, stream URL)
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)  # set: webhooks must be signed
    twilio_number: str | None = None  # outbound calls come from this number
    twilio_api_base: str = "https://api.twilio.com"  # a test points this at a local fake
    personas_by_number: tuple[tuple[str, str], ...] = ()  # called number -> persona id
    stream_token_ttl_s: float = 60.0  # a webhook's stream token must be used this soon, once
    hf_token: str | None = field(default=None, repr=False)  # fastphone signs in with it

    @classmethod
    def from_env(cls) -> "PhoneSettings":
        pairs = []
        for item in os.environ.get("COZY_PHONE_PERSONAS", "").split(","):
            number, _, persona = item.partition("=")
            if number.strip() and persona.strip():
                pairs.append((number.strip(), persona.strip()))
        return cls(mode=os.environ.get("COZY_PHONE", "").strip().lower(),
                   public_url=(os.environ.get("COZY_PUBLIC_URL") or "").rstrip("/") or None,
                   twilio_account_sid=os.environ.get("TWILIO_ACCOUNT_SID") or None,
                   twilio_auth_token=os.environ.get("TWILIO_AUTH_TOKEN") or None,
                   twilio_number=os.environ.get("TWILIO_PHONE_NUMBER") or None,
                   twilio_api_base=(os.environ.get("TWILIO_API_BASE") or cls.twilio_api_base).rstrip("/"),
                   personas_by_number=tuple(pairs),
                   stream_token_ttl_s=_env_float("COZY_PHONE_TOKEN_TTL_S", cls.stream_token_ttl_s),
                   hf_token=os.environ.get("HF_TOKEN") or None)


@dataclass(frozen=True)
class UsageSettings:
    """What turns cost (a price table) and how much one user may use a day (0: no limit)."""

    prices_path: Path = PROJECT_ROOT / "providers" / "prices.yaml"
    daily_budget_usd: float = 0.0
    daily_budget_tokens: int = 0

    @classmethod
    def from_env(cls) -> "UsageSettings":
        return cls(prices_path=_env_path("COZY_PRICES", cls.prices_path),
                   daily_budget_usd=_env_float("COZY_DAILY_BUDGET_USD", cls.daily_budget_usd),
                   daily_budget_tokens=_env_int("COZY_DAILY_BUDGET_TOKENS", cls.daily_budget_tokens))


def _env_names(name: str) -> tuple[str, ...]:
    return tuple(filter(None, (item.strip() for item in os.environ.get(name, "").split(","))))


@dataclass(frozen=True)
class ApiSettings:
    """Who may call /v1 (handlers/api/auth.py) and how often (handlers/api/rate_limit.py).

    COZY_API_KEYS="key1=alice,key2=bob" (a key without "=user" acts as user "key-<hash>"),
    COZY_JWT_SECRET (HS256; the user is the `sub` claim), COZY_ADMINS="alice" (may read
    others' usage)."""

    api_keys: dict[str, str] = field(default_factory=dict, repr=False)  # key -> user id
    jwt_secret: str | None = field(default=None, repr=False)
    admins: frozenset[str] = frozenset()
    requests_per_minute: float = 120
    audio_seconds_per_minute: float = 600
    voice_start_timeout_s: float = 10.0  # a voice websocket that sends no 'start' this soon is closed

    @classmethod
    def from_env(cls) -> "ApiSettings":
        keys: dict[str, str] = {}
        for entry in _env_names("COZY_API_KEYS"):
            key, _, user = entry.partition("=")
            keys[key] = user or f"key-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
        return cls(api_keys=keys, jwt_secret=os.environ.get("COZY_JWT_SECRET") or None,
                   admins=frozenset(_env_names("COZY_ADMINS")),
                   requests_per_minute=_env_float("COZY_RATE_LIMIT_RPM", cls.requests_per_minute),
                   audio_seconds_per_minute=_env_float("COZY_RATE_LIMIT_AUDIO_SECONDS", cls.audio_seconds_per_minute),
                   voice_start_timeout_s=_env_float("COZY_VOICE_START_TIMEOUT_S", cls.voice_start_timeout_s))


@dataclass(frozen=True)
class ToolSettings:
    """Where the tool gateway reads its servers (tools/servers.yaml) and keeps its state.
    State defaults to <data dir>/tools, so one COZY_DATA_DIR moves everything."""

    config_path: Path = PROJECT_ROOT / "tools" / "servers.yaml"
    state_dir: Path | None = None  # None: <data dir>/tools
    pins_path: Path | None = None  # None: <state dir>/pins.json
    log_dir: Path | None = None  # None: <state dir>/logs
    identity_key_path: Path | None = None  # None: <state dir>/identity.key
    audit_path: Path | None = None  # the gateway run on its own audits here (the app audits to its database)

    def under(self, data_dir: Path) -> "ToolSettings":
        """Every path filled in, relative to this data dir where not set."""
        state = self.state_dir or data_dir / "tools"
        return replace(self, state_dir=state, pins_path=self.pins_path or state / "pins.json",
                       log_dir=self.log_dir or state / "logs",
                       identity_key_path=self.identity_key_path or state / "identity.key",
                       audit_path=self.audit_path or state / "audit.jsonl")

    @classmethod
    def from_env(cls) -> "ToolSettings":
        def path(name: str) -> Path | None:
            return _env_path(name, Path()) if os.environ.get(name) else None
        return cls(config_path=_env_path("COZY_TOOLS_CONFIG", cls.config_path), state_dir=path("COZY_TOOLS_STATE_DIR"),
                   pins_path=path("COZY_TOOLS_PINS_PATH"), log_dir=path("COZY_TOOLS_LOG_DIR"),
                   identity_key_path=path("COZY_TOOLS_IDENTITY_KEY_PATH"), audit_path=path("COZY_TOOLS_AUDIT"))


def _truthy(raw: str | None) -> bool:
    return (raw or "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 7860
    data_dir: Path = PROJECT_ROOT / "data"
    personas_dir: Path = PROJECT_ROOT / "personas"
    default_persona: str = "companion"
    voice: VoiceSettings = field(default_factory=VoiceSettings)
    models: ModelSettings = field(default_factory=ModelSettings)
    context: ContextSettings = field(default_factory=ContextSettings)
    db_path: Path | None = None  # None: <data_dir>/cozy.duckdb
    # Scale-out (deploy/): a shared PostgreSQL instead of the DuckDB file, and Redis for what
    # replicas must share (limits, phrase cache, voice routes). None: the embedded defaults.
    db_url: str | None = field(default=None, repr=False)
    redis_url: str | None = field(default=None, repr=False)
    replica: str = "main"  # names this process in Redis and logs; deploy/local.sh sets replica-<i>
    # How the other replicas reach this one (voice side routes); None: http://<host>:<port>.
    replica_address: str | None = None
    drain_timeout_s: float = 30.0  # on SIGTERM, how long turns in flight may take to finish
    models_path: Path | None = None  # joined and unpacked models; None: <data_dir>/models
    secret: str | None = field(default=None, repr=False)  # signs voice tokens; None: a key made in data_dir
    # Public mode: every visitor is an identity of their own (space/visitors.py); on a
    # Hugging Face Space (SYSTEM=spaces) it is always on.
    public: bool = False
    on_spaces: bool = False
    hf_oauth: bool = False  # a Space with `hf_oauth: true`: visitors may sign in with Hugging Face
    visitor_limits: VisitorLimits = field(default_factory=VisitorLimits)
    turn_servers: TurnServerSettings = field(default_factory=TurnServerSettings)
    moderation: ModerationSettings = field(default_factory=ModerationSettings)
    phone: PhoneSettings = field(default_factory=PhoneSettings)
    usage: UsageSettings = field(default_factory=UsageSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    tools: ToolSettings = field(default_factory=ToolSettings)

    @property
    def models_dir(self) -> Path:
        return self.models_path or self.data_dir / "models"

    @property
    def replica_url(self) -> str:
        if self.replica_address:
            return self.replica_address
        import socket
        host = socket.gethostname() if self.host in ("0.0.0.0", "::") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    @property
    def database_path(self) -> Path:
        return self.db_path or self.data_dir / "cozy.duckdb"

    @classmethod
    def from_env(cls) -> "Settings":
        on_spaces = os.environ.get("SYSTEM") == "spaces"
        # A Space routes its public address to $PORT on every interface.
        host = os.environ.get("COZY_HOST") or ("0.0.0.0" if on_spaces else cls.host)  # noqa: S104
        port = _env_int("COZY_PORT", _env_int("PORT", cls.port) if on_spaces else cls.port)
        return cls(
            host=host,
            port=port,
            data_dir=_env_path("COZY_DATA_DIR", cls.data_dir),
            models_path=_env_path("COZY_MODELS_DIR", None),
            personas_dir=_env_path("COZY_PERSONAS_DIR", cls.personas_dir),
            default_persona=os.environ.get("COZY_DEFAULT_PERSONA", cls.default_persona),
            voice=VoiceSettings.from_env(),
            models=ModelSettings.from_env(),
            context=ContextSettings.from_env(),
            db_path=_env_path("COZY_DB_PATH", None) if os.environ.get("COZY_DB_PATH") else None,
            db_url=os.environ.get("COZY_DB_URL") or None,
            redis_url=os.environ.get("COZY_REDIS_URL") or None,
            replica=os.environ.get("COZY_REPLICA") or cls.replica,
            replica_address=os.environ.get("COZY_REPLICA_URL") or None,
            drain_timeout_s=_env_float("COZY_DRAIN_TIMEOUT_S", cls.drain_timeout_s),
            secret=os.environ.get("COZY_SECRET") or None,
            public=on_spaces or _truthy(os.environ.get("COZY_PUBLIC")),
            on_spaces=on_spaces,
            hf_oauth=on_spaces and bool(os.environ.get("OAUTH_CLIENT_ID")),
            visitor_limits=VisitorLimits.from_env(),
            turn_servers=TurnServerSettings.from_env(),
            moderation=ModerationSettings.from_env(),
            phone=PhoneSettings.from_env(),
            usage=UsageSettings.from_env(),
            api=ApiSettings.from_env(),
            tools=ToolSettings.from_env(),
        )
