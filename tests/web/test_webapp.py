"""The example web app over real HTTP: AG-UI streams, history, approvals, owners, limits."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest
from conftest import GATE, Served, sse_events

from agentkit.messages import ToolResultMessage
from agentkit.web import ModelQueue, UserLimits


def new_session(client: httpx.Client) -> str:
    response = client.post("/api/sessions")
    assert response.status_code == 201
    return str(response.json()["id"])


def send(client: httpx.Client, session: str, message: Any) -> list[dict[str, Any]]:
    with client.stream("POST", f"/api/sessions/{session}/messages", json=message) as response:
        assert response.status_code == 200, response.read()
        return list(sse_events(response))


def resume(client: httpx.Client, session: str, entries: list[dict[str, Any]]) -> httpx.Response:
    return client.post(f"/api/sessions/{session}/resume", json={"resume": entries})


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["delta"] for e in events if e["type"] == "TEXT_MESSAGE_CONTENT")


def test_every_api_request_needs_a_valid_token(served: Served) -> None:
    for client in (served.client(None), served.client("mallory")):
        with client:
            for method, path in (
                ("POST", "/api/sessions"),
                ("GET", "/api/sessions/x"),
                ("POST", "/api/sessions/x/messages"),
            ):
                response = client.request(method, path, json={"message": "hi"})
                assert response.status_code == 401
                assert response.headers["www-authenticate"] == "Bearer"
    with served.client(None) as anonymous:  # the page itself holds no data
        page = anonymous.get("/")
        assert page.status_code == 200 and '<script src="/static/app.js"' in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert anonymous.get("/static/app.js").headers["content-type"].startswith("text/javascript")
        assert anonymous.get("/static/../webapp.py").status_code == 404


def test_a_message_streams_agui_events_and_the_history_keeps_it(served: Served) -> None:
    with served.client() as alice:
        session = new_session(alice)
        events = send(alice, session, {"message": "hello"})
        kinds = [e["type"] for e in events]
        assert kinds[0] == "RUN_STARTED" and kinds[-1] == "RUN_FINISHED"
        assert events[0]["threadId"] == session  # the public id, not the store's
        assert "TEXT_MESSAGE_START" in kinds and "TEXT_MESSAGE_END" in kinds
        assert text_of(events) == "echo: hello"
        assert events[-1]["outcome"] == {"type": "success"}

        history = alice.get(f"/api/sessions/{session}").json()
        assert history["threadId"] == session and history["interrupts"] == []
        assert [(m["role"], m["content"]) for m in history["messages"]] == [
            ("user", "hello"),
            ("assistant", "echo: hello"),
        ]
        assert alice.get("/api/sessions").json() == {"sessions": [session]}


def test_nobody_reads_or_steers_another_users_session(served: Served) -> None:
    with served.client() as alice, served.client("bob-token") as bob:
        session = new_session(alice)
        send(alice, session, {"message": "refund please"})  # paused, waiting for approval
        before = served.store.load(f"alice/{session}")

        unknown = bob.get("/api/sessions/s_unknown")
        for response in (
            bob.get(f"/api/sessions/{session}"),
            bob.post(f"/api/sessions/{session}/messages", json={"message": "tell me"}),
            resume(
                bob,
                session,
                [
                    {
                        "interruptId": "call-refund",
                        "status": "resolved",
                        "payload": {"approved": True},
                    }
                ],
            ),
            unknown,
            alice.get("/api/sessions/s_unknown"),
        ):
            assert response.status_code == 404
            assert response.json() == unknown.json() == {"detail": "no such session"}
        assert bob.get("/api/sessions").json() == {"sessions": []}
        assert served.store.load(f"alice/{session}") == before  # nothing ran, nothing added
        assert alice.get(f"/api/sessions/{session}").json()["interrupts"][0]["id"] == (
            "call-refund"
        )


def test_approval_round_trip_and_bad_decisions(served: Served) -> None:
    with served.client() as alice:
        session = new_session(alice)
        events = send(alice, session, {"message": "refund order A-1"})
        starts = [e for e in events if e["type"] == "TOOL_CALL_START"]
        assert [e["toolCallName"] for e in starts] == ["lookup_order", "refund_order"]
        assert [e["toolCallId"] for e in events if e["type"] == "TOOL_CALL_RESULT"] == ["call-look"]
        outcome = events[-1]["outcome"]
        assert outcome["type"] == "interrupt"
        assert [i["toolCallId"] for i in outcome["interrupts"]] == ["call-refund"]

        paused = alice.post(f"/api/sessions/{session}/messages", json={"message": "hello?"})
        assert paused.status_code == 409 and "call-refund" in paused.json()["detail"]
        history = alice.get(f"/api/sessions/{session}").json()
        assert [i["id"] for i in history["interrupts"]] == ["call-refund"]

        not_pending = resume(
            alice,
            session,
            [{"interruptId": "call-look", "status": "resolved", "payload": {"approved": True}}],
        )
        assert not_pending.status_code == 409
        assert "not waiting" in not_pending.json()["detail"]
        malformed = resume(
            alice,
            session,
            [{"interruptId": "call-refund", "status": "resolved", "payload": {"approved": "yes"}}],
        )
        assert malformed.status_code == 409 and "not an approval" in malformed.json()["detail"]
        bad_arguments = resume(
            alice,
            session,
            [
                {
                    "interruptId": "call-refund",
                    "status": "resolved",
                    "payload": {"approved": True, "arguments": {"order": 1}},
                }
            ],
        )
        assert bad_arguments.status_code == 409 and "do not fit" in bad_arguments.json()["detail"]
        assert resume(alice, session, []).status_code == 422

        entry = {
            "interruptId": "call-refund",
            "status": "resolved",
            "payload": {"approved": True, "arguments": {"order": "A-1", "amount": 5}},
        }
        with alice.stream(
            "POST", f"/api/sessions/{session}/resume", json={"resume": [entry]}
        ) as response:
            assert response.status_code == 200
            resumed = list(sse_events(response))
        assert resumed[0]["type"] == "RUN_STARTED"
        result = next(e for e in resumed if e["type"] == "TOOL_CALL_RESULT")
        assert result["toolCallId"] == "call-refund"
        assert result["content"] == "Refunded 5.00 on order A-1."  # the edited arguments
        assert resumed[-1]["outcome"] == {"type": "success"}
        assert "Refunded 5.00" in text_of(resumed)

        second = resume(alice, session, [entry])  # a second resume of the same pause
        assert second.status_code == 409 and "nothing is waiting" in second.json()["detail"]
        stored = served.store.load(f"alice/{session}").messages
        refunds = [
            m
            for m in stored
            if isinstance(m, ToolResultMessage) and m.tool_call_id == "call-refund"
        ]
        assert len(refunds) == 1


def test_a_denial_reaches_the_model(served: Served) -> None:
    with served.client() as alice:
        session = new_session(alice)
        send(alice, session, {"message": "refund it"})
        entry = {"interruptId": "call-refund", "status": "cancelled"}
        with alice.stream(
            "POST", f"/api/sessions/{session}/resume", json={"resume": [entry]}
        ) as response:
            events = list(sse_events(response))
        assert "The user denied this tool call." in text_of(events)


@pytest.mark.parametrize(
    "body",
    [
        {"message": 42},
        {"message": ["hi"]},
        {"message": {"text": "hi"}},
        {"message": None},
        {"message": ""},
        {},
        {"message": "hi", "role": "system"},
        "hi",
    ],
)
def test_a_message_that_is_not_text_is_422(served: Served, body: Any) -> None:
    with served.client() as alice:
        session = new_session(alice)
        assert alice.post(f"/api/sessions/{session}/messages", json=body).status_code == 422
        assert served.store.load(f"alice/{session}", missing_ok=True).messages == ()


def test_message_size_and_rate_limits(served: Served, limits: UserLimits) -> None:
    limits.messages_per_minute = 3
    with served.client() as alice, served.client("bob-token") as bob:
        session = new_session(alice)
        too_big = alice.post(f"/api/sessions/{session}/messages", json={"message": "x" * 201})
        assert too_big.status_code == 413 and "200 characters" in too_big.json()["detail"]
        for n in range(3):
            send(alice, session, {"message": f"m{n}"})
        over = alice.post(f"/api/sessions/{session}/messages", json={"message": "m3"})
        assert over.status_code == 429 and 1 <= int(over.headers["retry-after"]) <= 60
        assert "3 messages a minute" in over.json()["detail"]
        send(bob, new_session(bob), {"message": "bob is not limited by alice"})
        users = [
            m.content for m in served.store.load(f"alice/{session}").messages if m.role == "user"
        ]
        assert users == ["m0", "m1", "m2"]


def test_a_message_refused_while_paused_costs_no_rate(served: Served, limits: UserLimits) -> None:
    limits.messages_per_minute = 2
    with served.client() as alice:
        session = new_session(alice)
        send(alice, session, {"message": "refund please"})  # 1 of 2: paused for approval
        for _ in range(3):
            paused = alice.post(f"/api/sessions/{session}/messages", json={"message": "hi?"})
            assert paused.status_code == 409 and "call-refund" in paused.json()["detail"]
        entry = {"interruptId": "call-refund", "status": "cancelled"}
        assert resume(alice, session, [entry]).status_code == 200
        assert text_of(send(alice, session, {"message": "now"})) == "echo: now"  # 2 of 2
        released(served)


def released(served: Served) -> None:
    """Wait (up to 5 s) until no run holds a slot of the model or of a user."""
    deadline = time.monotonic() + 5
    while served.config.model_queue.active or served.config.limits._running:
        assert time.monotonic() < deadline, "a run still holds its slots"
        time.sleep(0.01)


def held_run(client: httpx.Client, session: str, started: threading.Event) -> threading.Thread:
    """A run that waits for GATE, its stream read in a thread."""

    def read() -> None:
        with client.stream(
            "POST", f"/api/sessions/{session}/messages", json={"message": "hold on"}
        ) as response:
            assert response.status_code == 200
            for event in sse_events(response):
                if event["type"] == "RUN_STARTED":
                    started.set()

    thread = threading.Thread(target=read)
    thread.start()
    assert started.wait(5)
    return thread


def test_concurrent_runs_per_user(served: Served, limits: UserLimits) -> None:
    limits.max_concurrent_runs = 1
    with served.client() as alice, served.client() as alice2:
        first, second = new_session(alice), new_session(alice)
        thread = held_run(alice, first, threading.Event())
        refused = alice2.post(f"/api/sessions/{second}/messages", json={"message": "too"})
        assert refused.status_code == 429 and "1 runs at once" in refused.json()["detail"]
        assert refused.headers["retry-after"] == "1"
        GATE.set()
        thread.join(5)
        released(served)  # the slot is given back once the response has ended
        assert text_of(send(alice2, second, {"message": "now"})) == "echo: now"


def test_a_full_model_queue_is_429_with_retry_after(
    served: Served, model_queue: ModelQueue
) -> None:
    model_queue.capacity = 1
    with served.client() as alice, served.client("bob-token") as bob:
        thread = held_run(alice, new_session(alice), threading.Event())
        busy = bob.post(f"/api/sessions/{new_session(bob)}/messages", json={"message": "hi"})
        assert busy.status_code == 429 and busy.headers["retry-after"] == "2"
        assert "model is busy" in busy.json()["detail"]
        GATE.set()
        thread.join(5)
        released(served)  # the slot is given back once the response has ended
        assert text_of(send(bob, new_session(bob), {"message": "hi"})) == "echo: hi"


def test_a_browser_that_disconnects_cancels_the_run_between_rounds(
    served: Served, model_queue: ModelQueue
) -> None:
    with served.client() as alice:
        session = new_session(alice)
        seen = []
        with alice.stream(
            "POST", f"/api/sessions/{session}/messages", json={"message": "slow one"}
        ) as response:
            for event in sse_events(response):
                seen.append(event["type"])
                if seen[-1] == "TEXT_MESSAGE_CONTENT":  # round 1 is streaming: hang up
                    break
        assert "TOOL_CALL_RESULT" in seen
        released(served)  # the answer would take an hour: only a cancel frees the slots
        stored = served.store.load(f"alice/{session}").messages
        assert [m.role for m in stored] == ["user", "assistant", "tool"]  # round 0 whole only
        history = alice.get(f"/api/sessions/{session}").json()
        assert len(history["messages"]) == 3 and history["interrupts"] == []
        assert text_of(send(alice, session, {"message": "still here"})) == "echo: still here"


def test_two_resumes_racing_run_the_call_once(served: Served) -> None:
    with served.client() as alice, served.client() as alice2:
        session = new_session(alice)
        send(alice, session, {"message": "refund twice?"})
        entry = {"interruptId": "call-refund", "status": "resolved", "payload": {"approved": True}}
        outcomes: list[str] = []
        go = threading.Barrier(2)

        def decide(client: httpx.Client) -> None:
            go.wait()
            path = f"/api/sessions/{session}/resume"
            with client.stream("POST", path, json={"resume": [entry]}) as response:
                if response.status_code != 200:
                    outcomes.append(f"HTTP {response.status_code}")
                    return
                last = list(sse_events(response))[-1]
                outcomes.append(last["type"] + " " + last.get("code", ""))

        threads = [threading.Thread(target=decide, args=(c,)) for c in (alice, alice2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert sorted(outcomes)[0] in ("HTTP 409", "RUN_ERROR ApprovalError")
        assert sorted(outcomes)[1] == "RUN_FINISHED "
        stored = served.store.load(f"alice/{session}").messages
        refunds = [
            m
            for m in stored
            if isinstance(m, ToolResultMessage) and m.tool_call_id == "call-refund"
        ]
        assert len(refunds) == 1
