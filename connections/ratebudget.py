"""A provider's API rate limits as one budget in Redis, shared by every process and caller.

Exact Online allows 60 calls a minute and 5,000 a day per app and company
(division), and answers 429 beyond that. The proxy (``connections.proxy``)
takes one call from the budget of (OAuth client id, division) before each
call and answers 429 itself, without calling the provider, when it is spent;
every answer of the provider then seeds the budget with what the provider
says is left (``X-RateLimit-Remaining``/``-Reset`` for the day,
``X-RateLimit-Minutely-Remaining``/``-Reset`` for the minute; resets in
epoch milliseconds).

Redis keys (prefix ``RATE_BUDGET_KEY_PREFIX``, by default
``tokenkeeper:ratebudget:``), one hash per family with ``remaining``,
``reset`` (epoch ms) and ``guessed`` (1 until the provider's headers named
the window), expiring at ``reset``:

- ``{client_id}:{scope}:minute``
- ``{client_id}:{scope}:day``

A family Tokenkeeper has not heard of yet starts full (the limit, resetting a
minute or a day from now) until the provider's headers say otherwise. Taking
a call is one Lua script, so two processes can never both take the last one.
Without Redis (``REDIS_URL`` unset, development) no budget is kept: the
provider's own 429s come through.
"""

import time
from dataclasses import dataclass

from django.conf import settings

from common import redisclients

MINUTE_MS = 60_000
DAY_MS = 86_400_000

# KEYS: minute hash, day hash. ARGV: now (ms), minute limit, day limit.
# Returns {1, minute remaining, minute reset, day remaining, day reset} when a call was taken,
# {0, ...same...} when one family is spent (nothing taken).
_TAKE = """
local now = tonumber(ARGV[1])
local function read(key, limit, period)
  local v = redis.call('HMGET', key, 'remaining', 'reset', 'guessed')
  local remaining, reset = tonumber(v[1]), tonumber(v[2])
  if not reset or reset <= now then
    return limit, now + period, '1'
  end
  return remaining, reset, v[3] or '0'
end
local mr, mreset, mguess = read(KEYS[1], tonumber(ARGV[2]), 60000)
local dr, dreset, dguess = read(KEYS[2], tonumber(ARGV[3]), 86400000)
if mr <= 0 or dr <= 0 then
  return {0, mr, mreset, dr, dreset}
end
redis.call('HSET', KEYS[1], 'remaining', mr - 1, 'reset', mreset, 'guessed', mguess)
redis.call('PEXPIREAT', KEYS[1], mreset)
redis.call('HSET', KEYS[2], 'remaining', dr - 1, 'reset', dreset, 'guessed', dguess)
redis.call('PEXPIREAT', KEYS[2], dreset)
return {1, mr - 1, mreset, dr - 1, dreset}
"""

# KEYS: minute hash, day hash. ARGV: now (ms), then remaining and reset (ms) of the minute and of the
# day ("" when the answer had no such header). The provider's word wins, except that calls taken here
# since it counted are not given back: within the same window the lower count is kept — a window the
# provider named, not one Tokenkeeper guessed (``guessed``), even if the guess hit the same millisecond.
_SEED = """
local now = tonumber(ARGV[1])
for i = 1, 2 do
  local remaining, reset = tonumber(ARGV[i * 2]), tonumber(ARGV[i * 2 + 1])
  if remaining and reset and reset > now then
    local v = redis.call('HMGET', KEYS[i], 'remaining', 'reset', 'guessed')
    if v[3] == '0' and tonumber(v[2]) == reset and tonumber(v[1]) and tonumber(v[1]) < remaining then
      remaining = tonumber(v[1])
    end
    redis.call('HSET', KEYS[i], 'remaining', remaining, 'reset', reset, 'guessed', '0')
    redis.call('PEXPIREAT', KEYS[i], reset)
  end
end
return 1
"""


def _redis():
    """This process's client for the budgets, with the two scripts registered on it."""
    client = redisclients.for_process(getattr(settings, "RATE_BUDGET_REDIS_URL", ""))
    if client is not None and not hasattr(client, "seed_script"):
        client.take_script = client.register_script(_TAKE)
        client.seed_script = client.register_script(_SEED)  # last: its presence says both are there
    return client


def _now_ms() -> int:
    return int(time.time() * 1000)


def _keys(client_id: str, scope: str) -> tuple[str, str]:
    base = f"{settings.RATE_BUDGET_KEY_PREFIX}{client_id}:{scope}:"
    return base + "minute", base + "day"


@dataclass(frozen=True)
class Budget:
    """What is left of one (client, scope) budget; resets in epoch milliseconds."""

    minutely_remaining: int
    minutely_reset: int | None
    daily_remaining: int
    daily_reset: int | None

    def as_dict(self) -> dict:
        return {
            "minutely_remaining": self.minutely_remaining,
            "minutely_reset": self.minutely_reset,
            "daily_remaining": self.daily_remaining,
            "daily_reset": self.daily_reset,
        }


@dataclass(frozen=True)
class Taken:
    """The outcome of ``take``: ``allowed`` False when spent, ``retry_after`` seconds until a call frees."""

    allowed: bool
    budget: Budget
    family: str = ""  # "minute" or "day": the one that is spent

    @property
    def retry_after(self) -> int:
        reset = self.budget.minutely_reset if self.family == "minute" else self.budget.daily_reset
        return max(int(((reset or 0) - _now_ms() + 999) // 1000), 1)

    def headers(self) -> dict[str, str]:
        """Exact's headers for the spent family, as Exact itself would send them with its 429."""
        if self.family == "minute":
            return {
                "X-RateLimit-Minutely-Remaining": "0",
                "X-RateLimit-Minutely-Reset": str(self.budget.minutely_reset),
                "Retry-After": str(self.retry_after),
            }
        return {
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(self.budget.daily_reset),
            "Retry-After": str(self.retry_after),
        }


def take(client_id: str, scope: str, limits) -> Taken | None:
    """Take one call from the budget, atomically; None when no budget is kept (no Redis)."""
    client = _redis()
    if client is None:
        return None
    allowed, mr, mreset, dr, dreset = client.take_script(
        keys=list(_keys(client_id, scope)), args=[_now_ms(), limits.per_minute, limits.per_day]
    )
    budget = Budget(int(mr), int(mreset), int(dr), int(dreset))
    if allowed:
        return Taken(True, budget)
    return Taken(False, budget, "minute" if budget.minutely_remaining <= 0 else "day")


def _int(value) -> int | None:
    try:
        return int(value.decode() if isinstance(value, bytes) else str(value).strip())
    except (TypeError, ValueError):
        return None


def seed(client_id: str, scope: str, headers, *, known: Budget | None = None) -> None:
    """Store what the provider's rate-limit headers say is left (one round trip; missing families are left alone).

    ``known``: what the budget held right after this call was taken. When the provider says the same
    (the usual case once seeded: Tokenkeeper is the app's only caller), storing it would change
    nothing (the lower count is kept), so Redis is not asked at all.
    """
    minute = _int(headers.get("X-RateLimit-Minutely-Remaining")), _int(headers.get("X-RateLimit-Minutely-Reset"))
    day = _int(headers.get("X-RateLimit-Remaining")), _int(headers.get("X-RateLimit-Reset"))
    if None in minute and None in day:
        return
    if (
        known is not None
        and (None in minute or minute == (known.minutely_remaining, known.minutely_reset))
        and (None in day or day == (known.daily_remaining, known.daily_reset))
    ):
        return
    client = _redis()
    if client is None:
        return
    values = [max(v, 0) if v is not None and i % 2 == 0 else v for i, v in enumerate((*minute, *day))]
    client.seed_script(keys=list(_keys(client_id, scope)), args=[_now_ms(), *("" if v is None else v for v in values)])


def read(client_id: str, scope: str, limits) -> Budget | None:
    """What is left, for showing (no call taken); a family not heard of is full with an unknown reset."""
    client = _redis()
    if client is None:
        return None
    now = _now_ms()
    pipe = client.pipeline(transaction=False)
    for key in _keys(client_id, scope):
        pipe.hmget(key, "remaining", "reset")
    (mr, mreset), (dr, dreset) = pipe.execute()
    minute = (_int(mr), _int(mreset)) if _int(mreset) and _int(mreset) > now else (limits.per_minute, None)
    day = (_int(dr), _int(dreset)) if _int(dreset) and _int(dreset) > now else (limits.per_day, None)
    return Budget(minute[0], minute[1], day[0], day[1])


def connection_budget(connection) -> dict | None:
    """The remaining budget of a connection's company, for the API and its page (None: none is kept)."""
    client = connection.oauth_client
    limits = client.provider_spec.api_rate_limits
    if limits is None or connection.account_division is None:
        return None
    try:
        budget = read(client.client_id, str(connection.account_division), limits)
    except Exception:  # Redis away: the page and the API still answer
        return None
    return budget.as_dict() if budget else None
