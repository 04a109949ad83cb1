"""Unit tests of the SQS adapter with fake boto3 clients: the error table, the wire
mapping, batching and the per-message reporting of partial failures. No broker needed."""

from __future__ import annotations

import base64
import functools
import os
import signal
import threading
import time
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ReadTimeoutError,
)
from messaging_sqs import SqsDriver
from messaging_sqs import _wire as wire
from messaging_sqs._client import Clients
from messaging_sqs._errors import BatchEntryError, SqsRefused, classify
from messaging_sqs._requests import Requests

import messaging
from messaging.driver import OutgoingMessage, SubscriptionOptions
from messaging.errors import ErrorCode
from messaging.urls import parse_url

ACCOUNT = "000000000000"
TOPIC_ARN = f"arn:aws:sns:us-east-1:{ACCOUNT}:orders"
QUEUE_URL = f"http://sqs.local/{ACCOUNT}/orders--"


def client_error(code: str, operation: str = "SendMessageBatch") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} here"}}, operation)


class FakeSns:
    def __init__(self, groups: list[str]) -> None:
        self.groups = groups
        self.calls: list[str] = []

    def get_topic_attributes(self, **kwargs: Any) -> Any:
        self.calls.append("get_topic_attributes")
        if kwargs["TopicArn"] != TOPIC_ARN:
            raise client_error("NotFound", "GetTopicAttributes")
        return {"Attributes": {}}

    def list_subscriptions_by_topic(self, **kwargs: Any) -> Any:
        self.calls.append("list_subscriptions_by_topic")
        return {"Subscriptions": [
            {"Protocol": "sqs", "Endpoint": f"arn:aws:sqs:us-east-1:{ACCOUNT}:orders--{g}"}
            for g in self.groups] + [{"Protocol": "lambda", "Endpoint": "arn:aws:lambda:x"}]}

    def subscribe(self, **kwargs: Any) -> Any:
        self.calls.append("subscribe")
        self.groups.append(kwargs["Endpoint"].rsplit("--", 1)[1])
        return {"SubscriptionArn": "arn:sub"}

    def list_topics(self, **kwargs: Any) -> Any:
        return {"Topics": [{"TopicArn": TOPIC_ARN}]}

    def create_topic(self, **kwargs: Any) -> Any:
        return {"TopicArn": TOPIC_ARN}

    def delete_topic(self, **kwargs: Any) -> Any:
        return {}


class FakeSqs:
    def __init__(self) -> None:
        self.batches: list[tuple[str, list[dict[str, Any]]]] = []
        self.fail: dict[str, Any] = {}  # queue url -> exception, or set of entry ids
        self.settle_failures: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        self.hold: threading.Barrier | None = None  # what each send waits for
        self.queued: list[int] = []  # what receive_message hands out
        self._taking = threading.Lock()

    def send_message_batch(self, **kwargs: Any) -> Any:
        url, entries = kwargs["QueueUrl"], kwargs["Entries"]
        if self.hold is not None:
            self.hold.wait()
        failure = self.fail.get(url)
        if isinstance(failure, Exception):
            raise failure
        self.batches.append((url, entries))
        failed = [{"Id": e["Id"], "Code": "InternalError", "Message": "no", "SenderFault": False}
                  for e in entries if failure and e["Id"] in failure]
        return {"Successful": [e for e in entries if not failure or e["Id"] not in failure],
                "Failed": failed}

    def get_queue_url(self, **kwargs: Any) -> Any:
        return {"QueueUrl": f"http://sqs.local/{ACCOUNT}/{kwargs['QueueName']}"}

    def create_queue(self, **kwargs: Any) -> Any:
        return self.get_queue_url(QueueName=kwargs["QueueName"])

    def set_queue_attributes(self, **kwargs: Any) -> Any:
        return {}

    def receive_message(self, **kwargs: Any) -> Any:
        with self._taking:
            self.received.append(kwargs)
            taken = self.queued[:kwargs["MaxNumberOfMessages"]]
            del self.queued[:len(taken)]
        return {"Messages": [{"MessageId": f"m{n}", "ReceiptHandle": f"r{n}", "Body": str(n)}
                             for n in taken]}

    def delete_message_batch(self, **kwargs: Any) -> Any:
        return {"Successful": [], "Failed": self.settle_failures}

    def change_message_visibility_batch(self, **kwargs: Any) -> Any:
        self.received.append(kwargs)
        return {"Successful": [], "Failed": self.settle_failures}

    def get_queue_attributes(self, **kwargs: Any) -> Any:
        return {"Attributes": {"ApproximateNumberOfMessages": "2",
                               "ApproximateNumberOfMessagesNotVisible": "1",
                               "ApproximateNumberOfMessagesDelayed": "1"}}

    def list_queues(self, **kwargs: Any) -> Any:
        return {"QueueUrls": []}

    def delete_queue(self, **kwargs: Any) -> Any:
        return {}


def make_driver(groups: list[str], ttl: float = 1.0) -> tuple[SqsDriver, FakeSqs, FakeSns,
                                                               list[float]]:
    sqs, sns = FakeSqs(), FakeSns(groups)
    slept: list[float] = []
    now = [0.0]
    driver = SqsDriver(Clients(sqs, sns, "us-east-1", "aws"), account_id=ACCOUNT,
                       group_cache_ttl=ttl, sleep=slept.append, clock=lambda: now[0])
    return driver, sqs, sns, slept


# -- the error table ----------------------------------------------------------------------
@pytest.mark.parametrize(("error", "code"), [
    (client_error("AWS.SimpleQueueService.NonExistentQueue"), ErrorCode.NOT_FOUND),
    (client_error("NotFound"), ErrorCode.NOT_FOUND),
    (client_error("InvalidClientTokenId"), ErrorCode.AUTHENTICATION),
    (client_error("SignatureDoesNotMatch"), ErrorCode.AUTHENTICATION),
    (client_error("AccessDenied"), ErrorCode.AUTHENTICATION),
    (client_error("AuthorizationError"), ErrorCode.AUTHENTICATION),
    (client_error("AWS.SimpleQueueService.BatchRequestTooLong"), ErrorCode.TOO_LARGE),
    (client_error("ThrottlingException"), ErrorCode.CONNECTION),
    (client_error("InvalidParameterValue"), ErrorCode.CONFIGURATION),
    (client_error("SomethingNew"), ErrorCode.UNKNOWN),
    (NoCredentialsError(), ErrorCode.AUTHENTICATION),
    (NoRegionError(), ErrorCode.CONFIGURATION),
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), ErrorCode.CONNECTION),
    (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), ErrorCode.CONNECTION),
    (BatchEntryError("InternalError", "x", sender_fault=False), ErrorCode.CONNECTION),
    (SqsRefused(ErrorCode.UNSUPPORTED, "x"), ErrorCode.UNSUPPORTED),
    (ValueError("x"), ErrorCode.UNKNOWN),
])
def test_error_table(error: BaseException, code: ErrorCode) -> None:
    assert classify(error) is code
    # error_code must work on an instance that was never opened
    assert SqsDriver.error_code(SqsDriver.__new__(SqsDriver), error) is code


def test_wrong_credentials_surface_as_authentication_failed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    class Refusing(FakeSns):
        def list_topics(self, **kwargs: Any) -> Any:
            raise client_error("InvalidClientTokenId", "ListTopics")

    def fake_clients(*args: Any, **kwargs: Any) -> Clients:
        return Clients(FakeSqs(), Refusing([]), "us-east-1", "aws")

    monkeypatch.setattr("messaging_sqs._driver.make_clients", fake_clients)
    with pytest.raises(messaging.AuthenticationFailed) as caught:
        messaging.connect("sqs://wrong:secret-value@?region=us-east-1")
    assert isinstance(caught.value.__cause__, ClientError)
    assert "secret-value" not in str(caught.value)


# -- the wire -------------------------------------------------------------------------------
def roundtrip(message: OutgoingMessage, fifo: bool = False) -> Any:
    entry, size = wire.encode(message, "id-1", fifo)
    native = {"MessageId": "sqs-id", "ReceiptHandle": "r", "Body": entry["MessageBody"],
              "MessageAttributes": entry["MessageAttributes"],
              "Attributes": {"ApproximateReceiveCount": "3", "SentTimestamp": "1700000000000",
                             **({"MessageGroupId": entry["MessageGroupId"]} if fifo else {})}}
    return entry, size, wire.decode(native, "orders", fifo)


def test_text_travels_as_is_and_headers_as_string_attributes() -> None:
    message = OutgoingMessage(body="h\u00e9llo".encode(), key="user-42",
                              headers={"content-type": "text/plain", "trace": "abc"})
    entry, _, delivery = roundtrip(message)
    assert entry["MessageBody"] == "h\u00e9llo"
    assert entry["MessageAttributes"]["trace"] == {"DataType": "String", "StringValue": "abc"}
    assert entry["MessageAttributes"]["message-key"]["StringValue"] == "user-42"
    assert (delivery.body, delivery.key, delivery.id, delivery.attempt) == (
        message.body, "user-42", "id-1", 3)
    assert delivery.headers == {"content-type": "text/plain", "trace": "abc"}
    assert delivery.timestamp is not None
    assert delivery.timestamp.tzinfo is not None


def test_octet_stream_is_base64_without_a_marker() -> None:
    message = OutgoingMessage(body=b"payload", headers={"content-type":
                                                        "application/octet-stream"})
    entry, _, delivery = roundtrip(message)
    assert base64.b64decode(entry["MessageBody"]) == b"payload"
    assert "content-transfer-encoding" not in entry["MessageAttributes"]
    assert delivery.body == b"payload"


def test_binary_under_another_type_is_base64_with_a_marker() -> None:
    message = OutgoingMessage(body=b"\x00\xff", headers={"content-type": "image/png"})
    entry, _, delivery = roundtrip(message)
    assert entry["MessageAttributes"]["content-transfer-encoding"]["StringValue"] == "base64"
    assert delivery.body == b"\x00\xff"
    assert delivery.headers == {"content-type": "image/png"}


def test_fifo_key_is_the_message_group_id() -> None:
    entry, _, delivery = roundtrip(OutgoingMessage(body=b"x", key="\u043a 1%", dedup_id="d 1"),
                                   fifo=True)
    assert entry["MessageGroupId"] == "%D0%BA%201%25"
    assert entry["MessageDeduplicationId"] == "d%201"
    assert "message-key" not in entry["MessageAttributes"]
    assert delivery.key == "\u043a 1%"
    keyless = roundtrip(OutgoingMessage(body=b"x"), fifo=True)
    assert keyless[0]["MessageGroupId"] == "id-1"
    assert keyless[2].key is None


@pytest.mark.parametrize(("headers", "key", "code"), [
    ({"message-id": "mine"}, None, ErrorCode.CONFIGURATION),
    ({"has space": "v"}, None, ErrorCode.UNSUPPORTED),
    ({"AWS.trace": "v"}, None, ErrorCode.UNSUPPORTED),
    ({"empty": ""}, None, ErrorCode.UNSUPPORTED),
    ({"nul": "a\x00b"}, None, ErrorCode.UNSUPPORTED),
    ({f"h{n}": "v" for n in range(9)}, "k", ErrorCode.UNSUPPORTED),
    ({}, "k" * 129, ErrorCode.CONFIGURATION),
])
def test_what_sqs_would_refuse_is_refused_before_sending(
        headers: dict[str, str], key: str | None, code: ErrorCode) -> None:
    with pytest.raises(SqsRefused) as caught:
        wire.encode(OutgoingMessage(body=b"x", key=key, headers=headers), "id", fifo=False)
    assert caught.value.code is code


def test_the_declared_limit_holds_for_the_worst_message() -> None:
    headers = {f"h{n}": "v" for n in range(wire.MAX_HEADERS - 1)}
    headers["content-type"] = "image/png"
    budget = wire.MAX_MESSAGE_BYTES - sum(len(k) + len(v) for k, v in headers.items())
    worst = OutgoingMessage(body=b"\xff" * budget, key="k" * wire.MAX_KEY, headers=headers)
    _, size = wire.encode(worst, "0" * 32, fifo=False)
    assert size <= wire.SQS_MAX_BYTES
    assert wire.MAX_HEADERS == 7


# -- the driver with fake clients ----------------------------------------------------------
def test_send_goes_to_every_group_queue_in_batches_of_ten() -> None:
    driver, sqs, _, _ = make_driver(["billing", "analytics"])
    results = driver.send_batch("orders", [OutgoingMessage(body=b"m%d" % i)
                                           for i in range(10)])
    assert [url for url, _ in sqs.batches] == [QUEUE_URL + "billing", QUEUE_URL + "analytics"]
    assert all(isinstance(r, str) for r in results)
    ids = [e["MessageAttributes"]["message-id"]["StringValue"] for e in sqs.batches[0][1]]
    assert ids == results  # the same id in every group, and it is what send returns


def test_batches_are_split_by_total_size() -> None:
    driver, sqs, _, _ = make_driver(["billing"])
    body = b"x" * 100_000
    driver.send_batch("orders", [OutgoingMessage(body=body) for _ in range(5)])
    assert [len(entries) for _, entries in sqs.batches] == [2, 2, 1]


def test_a_failed_entry_is_reported_for_that_message_only() -> None:
    driver, sqs, _, _ = make_driver(["billing"])
    sqs.fail[QUEUE_URL + "billing"] = {"1"}
    results = driver.send_batch("orders", [OutgoingMessage(body=b"a"),
                                           OutgoingMessage(body=b"b")])
    assert isinstance(results[0], str)
    assert isinstance(results[1], BatchEntryError)
    assert results[1].code == "InternalError"


def test_a_whole_failure_before_anything_was_sent_is_raised() -> None:
    driver, sqs, _, _ = make_driver(["billing", "analytics"])
    for group in ("billing", "analytics"):
        sqs.fail[QUEUE_URL + group] = EndpointConnectionError(endpoint_url="x")
    with pytest.raises(EndpointConnectionError):
        driver.send_batch("orders", [OutgoingMessage(body=b"a") for _ in range(25)])
    assert sqs.batches == []


def test_the_requests_of_a_batch_run_side_by_side() -> None:
    driver, sqs, _, _ = make_driver(["billing", "analytics"])
    sqs.hold = threading.Barrier(4, timeout=10)  # each request waits for 3 others
    results = driver.send_batch("orders", [OutgoingMessage(body=b"%d" % i) for i in range(20)])
    assert all(isinstance(result, str) for result in results)
    assert sorted(len(entries) for _, entries in sqs.batches) == [10, 10, 10, 10]


def test_requests_give_each_outcome_in_the_order_of_the_calls() -> None:
    requests = Requests(3)
    try:
        def call(n: int) -> int:
            if n == 4:
                raise ValueError(n)
            return n

        outcomes = requests.run([functools.partial(call, n) for n in range(7)])
        assert [o if isinstance(o, int) else repr(o) for o in outcomes] == [
            0, 1, 2, 3, "ValueError(4)", 5, 6]
        assert requests.run([threading.current_thread]) == [threading.current_thread()]
    finally:
        requests.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
def test_requests_run_in_a_forked_child_whose_pool_has_no_threads() -> None:
    requests = Requests(4)

    def call(n: int) -> int:
        time.sleep(0.02)  # long enough for every pool thread to take part
        return n

    calls = [functools.partial(call, n) for n in range(8)]
    try:
        assert requests.run(calls) == list(range(8))  # the pool and its threads are made
        time.sleep(0.2)  # its threads wait for work, as a pool does between calls
        child = os.fork()
        if child == 0:  # the child: the pool object came along, its threads did not
            os._exit(0 if requests.run(calls) == list(range(8)) else 1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pid, status = os.waitpid(child, os.WNOHANG)
            if pid:
                assert os.waitstatus_to_exitcode(status) == 0
                return
            time.sleep(0.01)
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        raise AssertionError("the child's requests hung")
    finally:
        requests.close()


def test_requests_in_order_stop_at_the_first_failure() -> None:
    made: list[int] = []

    def call(n: int) -> int:
        made.append(n)
        if n == 1:
            raise ValueError(n)
        return n

    outcomes = Requests(8).run([functools.partial(call, n) for n in range(4)], in_order=True)
    assert made == [0, 1]  # a FIFO queue must not take the third batch before the second
    assert outcomes[0] == 0
    assert all(isinstance(o, ValueError) and o.args == (1,) for o in outcomes[1:])


def test_a_group_failing_after_another_got_the_message_is_per_message() -> None:
    driver, sqs, _, _ = make_driver(["billing", "analytics"])
    sqs.fail[QUEUE_URL + "analytics"] = client_error("InternalError")
    results = driver.send_batch("orders", [OutgoingMessage(body=b"a")])
    assert isinstance(results[0], ClientError)
    assert len(sqs.batches) == 1  # billing has it


def test_a_refused_message_fails_the_batch_before_anything_is_sent() -> None:
    driver, sqs, _, _ = make_driver(["billing"])
    with pytest.raises(SqsRefused):
        driver.send_batch("orders", [OutgoingMessage(body=b"fine"),
                                     OutgoingMessage(body=b"x", headers={"bad name": "v"})])
    assert sqs.batches == []


def test_group_list_is_cached_and_a_new_group_waits_it_out() -> None:
    driver, _, sns, slept = make_driver(["billing"], ttl=2.5)
    driver.send_batch("orders", [OutgoingMessage(body=b"a")])
    driver.send_batch("orders", [OutgoingMessage(body=b"b")])
    assert sns.calls.count("list_subscriptions_by_topic") == 1
    driver.subscribe("orders", "billing", SubscriptionOptions())
    assert slept == []  # an existing group: nothing to wait for
    driver.subscribe("orders", "audit", SubscriptionOptions())
    assert "subscribe" in sns.calls
    assert slept == [2.5]


def test_missing_destination_is_not_found() -> None:
    driver, _, _, _ = make_driver([])
    with pytest.raises(ClientError) as caught:
        driver.send_batch("nope", [OutgoingMessage(body=b"a")])
    assert driver.error_code(caught.value) is ErrorCode.NOT_FOUND
    assert driver.capabilities("nope").fan_out  # what create would make


def test_receive_rounds_waits_down_and_visibility_up() -> None:
    driver, sqs, _, _ = make_driver(["billing"])
    subscription = driver.subscribe("orders", "billing",
                                    SubscriptionOptions(visibility_timeout=1.2))
    subscription.receive_batch(50, 3.7)
    assert sqs.received[-1]["WaitTimeSeconds"] == 3
    assert sqs.received[-1]["MaxNumberOfMessages"] == 10
    assert sqs.received[-1]["VisibilityTimeout"] == 2
    subscription.send_nacks(["r1"], 1.5)
    assert sqs.received[-1]["Entries"][0]["VisibilityTimeout"] == 2


def test_a_full_answer_is_followed_by_receives_side_by_side_that_do_not_wait() -> None:
    driver, sqs, _, _ = make_driver(["billing"])
    subscription = driver.subscribe("orders", "billing", SubscriptionOptions())
    sqs.queued = list(range(45))
    deliveries = subscription.receive_batch(100, 5.0)
    assert sorted(int(d.body) for d in deliveries) == list(range(45))
    first, *more = sqs.received
    assert (first["MaxNumberOfMessages"], first["WaitTimeSeconds"]) == (10, 5)
    # 90 more wanted: one wave of 8 requests (the default concurrency), none waiting
    assert [call["MaxNumberOfMessages"] for call in more] == [10] * 8
    assert {call["WaitTimeSeconds"] for call in more} == {0}
    sqs.received.clear()
    sqs.queued = list(range(7))
    assert len(subscription.receive_batch(100, 5.0)) == 7
    assert len(sqs.received) == 1  # an answer that was not full is all there is


def test_stale_receipts_are_moot_other_failures_raise() -> None:
    driver, sqs, _, _ = make_driver(["billing"])
    subscription = driver.subscribe("orders", "billing", SubscriptionOptions())
    sqs.settle_failures = [{"Id": "0", "Code": "ReceiptHandleIsInvalid", "Message": "gone"}]
    subscription.send_acks(["r1"])
    subscription.send_nacks(["r1"], None)
    sqs.settle_failures = [{"Id": "0", "Code": "InternalError", "Message": "boom"}]
    with pytest.raises(BatchEntryError):
        subscription.send_acks(["r1"])


def test_depth_counts_ready_in_flight_and_delayed() -> None:
    driver, _, _, _ = make_driver(["billing"])
    assert driver.depth("orders", "billing") == 4


def test_create_options_are_checked() -> None:
    driver, _, _, _ = make_driver([])
    with pytest.raises(SqsRefused, match="no_such_option"):
        driver.create("orders", 1, [], {"no_such_option": True})
    with pytest.raises(SqsRefused):
        driver.create("orders", 1, [], {"fifo": "yes"})
    with pytest.raises(SqsRefused, match="--"):
        driver.create("a--b", 1, [], {})


@pytest.mark.parametrize("ttl", [-1.0, float("nan"), float("inf")])
def test_group_cache_ttl_must_be_a_finite_number(ttl: float) -> None:
    # Forever would mean a producer never sees a group created after its first send.
    with pytest.raises(SqsRefused, match="group_cache_ttl") as caught:
        SqsDriver.open(parse_url("sqs://?region=us-east-1"), {"group_cache_ttl": ttl})
    assert caught.value.code is ErrorCode.CONFIGURATION


@pytest.mark.parametrize("size", [10, 1000])  # both ways of checking ASCII
def test_a_body_travels_as_text_exactly_when_sqs_can_carry_it(size: int) -> None:
    plain = b"x" * size
    assert wire._is_text(plain) == plain.decode()
    assert wire._is_text(plain + b"\t\r\n\x7f") is not None
    for refused in (b"\x00", b"\x08", b"\x0b", b"\x1f"):
        assert wire._is_text(plain + refused) is None
    assert wire._is_text(plain + "\u00e9".encode()) is not None
    assert wire._is_text(plain + b"\xff") is None  # not UTF-8
