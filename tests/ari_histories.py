"""Made-up agent histories with known ARI answers, shared by the unit tests (pure
engine) and the integration tests (real broker and worker)."""
import json
import random

T0 = 1_795_000_000_000  # epoch ms of the first snapshot
STEP = 30_000           # agents report every 30 s


def vital(i: int, agent: str = "agent", *, tokens=2000, halluc=0.02, loops=5, conflicts=0, limit=100_000,
          metadata=None, tenant="t_ari") -> dict:
    return {"tenant": tenant, "id": 10_000 + i, "agent_id": agent, "agent_name": None,
            "token_consumption": tokens, "token_limit": limit, "hallucination_rate": halluc,
            "loop_frequency": loops, "directive_conflicts": conflicts, "overall_health": "green",
            "metadata": json.dumps(metadata or {}), "recorded_at": T0 + i * STEP}


def event(i: int, agent: str = "agent", *, type="directive_conflict", details=None, metadata=None,
          tenant="t_ari") -> dict:
    return {"tenant": tenant, "id": 90_000 + i, "agent_id": agent, "event_type": type, "details": details,
            "metadata": json.dumps(metadata or {}), "recorded_at": T0 + i * STEP - 1}


def steady(i: int, agent="agent", **kw) -> dict:
    """A calm snapshot whose token series alternates 1900/2100, so the baseline center is 2000."""
    return vital(i, agent, tokens=1900 if i % 2 else 2100, **kw)


def healthy_noise(agent="healthy", n=200, seed=7) -> list[dict]:
    rnd = random.Random(seed)
    return [vital(i, agent, tokens=max(0, int(rnd.gauss(2000, 150))), halluc=min(0.045, max(0.0, rnd.gauss(0.02, 0.006))),
                  loops=max(0, int(rnd.gauss(6, 2))), conflicts=rnd.choice([0, 0, 0, 1]),
                  metadata={"tasksCompleted": rnd.randint(0, 20), "model": "m1"}) for i in range(n)]


def burnout(agent="burnout") -> list[dict]:
    return ([steady(i, agent) for i in range(10)] + [steady(i, agent, loops=80) for i in range(10, 14)]
            + [steady(i, agent) for i in range(14, 17)])


def conflict_storm(agent="conflicts") -> tuple[list[dict], list[dict]]:
    events = [event(i, agent, details="System prompt vs user instruction mismatch",
                    metadata={"instruction_a": "answer in JSON", "instruction_b": "answer in prose"})
              for i in range(6, 10)] + [event(10, agent, type="tool_error", details="timeout")]
    vitals = ([steady(i, agent) for i in range(8)] + [steady(8, agent, conflicts=3), steady(9, agent, conflicts=4),
                                                      steady(10, agent, conflicts=6)]
              + [steady(i, agent, conflicts=1) for i in range(11, 14)])
    return events, vitals


def token_spike(agent="tokens") -> list[dict]:
    return ([steady(i, agent) for i in range(10)] + [vital(i, agent, tokens=4000) for i in range(10, 13)]
            + [steady(i, agent) for i in range(13, 16)])


def corrupt(agent="corrupt") -> list[dict]:
    return ([steady(i, agent, metadata={"tasks": 3}) for i in range(8)]
            + [steady(8, agent, metadata={"tasks": "three"})]                 # metadata type change
            + [steady(9, agent, metadata={"tasks": "four"})]
            + [vital(10, agent, tokens=250_000, metadata={"tasks": "five"})]   # overflow, and 125x: corruption
            + [steady(i, agent, metadata={"tasks": "six"}) for i in range(11, 13)])


def burnout_and_recovery(agent="recovers") -> list[dict]:
    """Loops at 80 with 2500 tokens (below protocol 4's 130 %) for 4 snapshots, then back to calm."""
    return ([steady(i, agent) for i in range(10)] + [vital(i, agent, tokens=2500, loops=80) for i in range(10, 14)]
            + [steady(i, agent) for i in range(14, 20)])
