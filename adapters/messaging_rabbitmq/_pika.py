"""The real :class:`~messaging_rabbitmq._transport.Transport`: pika on one I/O thread.

pika is not thread-safe, yet the portable layer calls the driver from many threads at
once (handler threads ack while the worker thread receives, a shared producer sends).
So one thread per connection runs the ``pika.SelectConnection``'s I/O loop (reading,
timers, heartbeats, pika's callbacks), and pika objects are touched only under the
connection's lock: the I/O thread holds it all the time except while it waits in the
kernel for the socket or a timer (``_release_while_waiting``). A calling thread takes
the lock, makes its pika calls and writes the frames to the socket itself, then waits on
a ``concurrent.futures.Future`` that a pika callback on the I/O thread completes (a
publish waits for its confirms, an ack for nothing). Handing every call to the I/O
thread instead, through ``IOLoop.add_callback_threadsafe``, made a call cost two thread
wake-ups and an extra turn of the loop: acking one message at a time ran at a fifth of
pika's own ``BlockingChannel``. That hand-off is still how calls go where pika waits
with kqueue or select (its poller there cannot be made to release the lock). Because
the loop always runs, heartbeats are answered however long a handler takes.

* Publishing: one channel in confirm mode. A batch is written out whole, then the
  caller waits for the broker's ``basic.ack`` frames (usually one per many messages,
  ``multiple=True``): one round trip per batch instead of one per message.
* Consuming: one channel per consumer, so ``basic.qos`` is that consumer's prefetch and
  delivery tags of different consumers never mix. Deliveries go to the consumer's
  :class:`~messaging_rabbitmq._transport.Sink` at the end of the loop's pass that read
  them, all of that pass's together: a receive woken at the first of a burst took it
  alone and acked it alone, and 10 KiB messages were received at 0.6 of raw pika.
* Acks: a set of tags becomes one ``basic.ack(multiple=True)`` for its longest prefix of
  the channel's unsettled tags plus one frame per remaining tag. The plan is made under
  the lock at the moment the frames are written, so two threads settling on one channel
  can never cover each other's tags; the caller returns once the frames are in the
  socket (when the socket takes less than all of them, once the I/O thread wrote the
  rest), so an ack that returned survives the process dying right after.
* Admin calls (declare, delete, passive checks) each use a short-lived channel: a refusal
  closes only that channel, never a publishing or consuming one.

Errors
------
Nothing here retries. A channel closed by the broker fails the calls waiting on it with
pika's ``ChannelClosedByBroker`` (its reply code says why); a lost connection fails every
waiting call with the loss, tells every consumer's sink, and ends the I/O thread: the
transport is then dead for good and the driver opens a new one. A call that gets no
answer within ``request_timeout`` raises ``TimeoutError``; for a publish, only the
messages still unconfirmed get it (their fate is unknown: they may have arrived).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import pika
import pika.exceptions
from pika.adapters.select_connection import IOLoop, PollPoller, SelectConnection
from pika.adapters.utils import connection_workflow, io_services_utils

from messaging_rabbitmq import _frames
from messaging_rabbitmq._errors import BrokerNack, ConnectTimeout, StaleDelivery
from messaging_rabbitmq._transport import (
    Arrival,
    Binding,
    ConsumerChannel,
    Declaration,
    Exchange,
    Publish,
    Queue,
    Sink,
)

log = logging.getLogger("messaging.rabbitmq")

T = TypeVar("T")
Future = concurrent.futures.Future

_DEFAULT_FRAME_MAX = 131072
_PLAINTEXT: tuple[type[Any], ...] = tuple(
    kind for kind in [getattr(io_services_utils, "_AsyncPlaintextTransport", None)] if kind)
"""pika's plaintext transport, which calling threads write to directly (none: a pika
without it gets its frames written by the I/O loop, as pika does)."""
_WRITE_AT = 64 * 1024
"""Bytes of frames a call gathers before it writes them: one ``send`` for a batch of
small messages, while the broker starts on a batch of large ones before its last
message is framed."""
_CLOSE_WAIT = 5.0  # seconds close() waits for the broker's close-ok before giving up


def _resolve(future: Future[T], value: T) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


def _as_error(reason: object) -> BaseException:
    if isinstance(reason, BaseException):
        return reason
    error: BaseException = pika.exceptions.AMQPError(repr(reason))
    return error


def _guarded(future: Future[Any], callback: Callable[..., None]) -> Callable[..., None]:
    """A pika callback whose exception fails ``future`` instead of escaping into pika's
    loop (where it would end the I/O thread and strand every other caller)."""

    def run(*args: Any) -> None:
        try:
            callback(*args)
        except Exception as error:
            _fail(future, error)

    return run


class PikaTransport:
    """One connection and its I/O thread (see the module documentation)."""

    def __init__(self, parameters: Sequence[pika.ConnectionParameters], *,
                 connect_timeout: float, request_timeout: float) -> None:
        self._request_timeout = request_timeout
        self._shared = threading.Lock()  # pika's objects: see _release_while_waiting
        self._ioloop = IOLoop()
        self._direct = _release_while_waiting(self._ioloop, self._shared)
        self._lock = threading.Lock()
        self._inflight: set[Future[Any]] = set()
        self._alive = False
        self._closing = False
        self._loss: BaseException | None = None
        self._connection: Any = None
        self._closed: Future[None] = Future()
        self._publisher = _Publisher(self)
        opened: Future[None] = Future()
        with self._shared:
            self._workflow = SelectConnection.create_connection(
                list(parameters), lambda result: self._on_connected(opened, result),
                custom_ioloop=self._ioloop)
        self._thread = threading.Thread(target=self._run, name="messaging-rabbitmq-io",
                                        daemon=True)
        self._thread.start()
        try:
            opened.result(timeout=connect_timeout)
        except concurrent.futures.TimeoutError:
            self._ioloop.add_callback_threadsafe(self._abort_opening)
            self._thread.join(_CLOSE_WAIT)
            raise ConnectTimeout(
                f"no AMQP connection within connect_timeout={connect_timeout} s") from None
        except BaseException:
            self._thread.join(_CLOSE_WAIT)
            raise

    # -- the protocol ------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self._alive

    @property
    def frame_max(self) -> int:
        connection = self._connection
        return int(connection.params.frame_max) if connection is not None \
            else _DEFAULT_FRAME_MAX

    def declare(self, declarations: Sequence[Declaration]) -> list[int]:
        counts: list[int] = []

        def step(channel: Any, future: Future[list[int]], index: int) -> None:
            if index == len(declarations):
                _resolve(future, counts)
                channel.close()
                return

            def done(frame: Any) -> None:
                counts.append(int(getattr(frame.method, "message_count", 0)))
                step(channel, future, index + 1)

            _declare_one(channel, declarations[index], _guarded(future, done))

        return self._wait(self._call(lambda future: self._on_channel(
            future, lambda channel: step(channel, future, 0))))

    def delete(self, queues: Sequence[str], exchanges: Sequence[str]) -> None:
        steps: list[Callable[[Any, Callable[[Any], None]], None]] = [
            *(lambda ch, done, q=q: ch.queue_delete(q, callback=done) for q in queues),
            *(lambda ch, done, x=x: ch.exchange_delete(x, callback=done) for x in exchanges),
        ]

        def step(channel: Any, future: Future[None], index: int) -> None:
            if index == len(steps):
                _resolve(future, None)
                channel.close()
                return
            steps[index](channel, _guarded(future, lambda _frame: step(channel, future,
                                                                        index + 1)))

        self._wait(self._call(lambda future: self._on_channel(
            future, lambda channel: step(channel, future, 0))))

    def publish(self, messages: Sequence[Publish]) -> list[BaseException | None]:
        if not messages:
            return []
        batch = _Batch(len(messages))
        try:
            self._wait(self._call(lambda future: self._publisher.publish(messages, batch,
                                                                          future)))
        except TimeoutError as error:
            return batch.finish(error)  # confirmed ones stay confirmed
        return batch.finish(None)

    def consume(self, queue: str, prefetch: int, sink: Sink) -> ConsumerChannel:
        consumer = _Consumer(self, queue, prefetch, sink)
        try:
            self._wait(self._call(consumer.start))
        except TimeoutError:
            consumer.close()
            raise
        return consumer

    def native(self) -> object:
        return self._connection

    def close(self) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True
            alive = self._alive
        if alive and self._thread.is_alive():
            self._ioloop.add_callback_threadsafe(self._close_connection)
            try:
                self._closed.result(timeout=_CLOSE_WAIT)
            except concurrent.futures.TimeoutError:
                self._ioloop.add_callback_threadsafe(self._ioloop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join(_CLOSE_WAIT)

    # -- using pika from any thread -----------------------------------------------------
    def _call(self, start: Callable[[Future[T]], None]) -> Future[T]:
        """Run ``start(future)``, which sends requests through pika; it (or a pika callback
        it sets up, run later by the I/O thread) completes the future. A connection loss
        fails every future still waiting.

        Where the lock is shared (``_direct``) the calling thread runs ``start`` itself
        and writes what it buffered; otherwise ``start`` is handed to the I/O thread."""
        future: Future[T] = Future()
        with self._lock:
            if not self._alive:
                raise self._down()
            self._inflight.add(future)
        future.add_done_callback(self._forget)

        def run() -> None:
            if future.done():
                return
            try:
                start(future)
            except Exception as error:
                _fail(future, error)

        if self._direct:
            with self._holding():
                self._run_here(run)
            return future
        try:
            self._ioloop.add_callback_threadsafe(run)
        except Exception:
            self._forget(future)
            raise
        return future

    def _send(self, frames: Callable[[], None]) -> None:
        """Run ``frames``, which has pika buffer frames the broker does not answer (acks),
        and return once they are in the socket."""
        if not self._direct:
            def start(future: Future[None]) -> None:
                frames()
                self._when_written(future)

            self._wait(self._call(start))
            return
        with self._holding():
            if not self._alive:
                raise self._down()
            written = self._run_here(frames)
        if not written:  # the socket took less than all: the I/O thread writes the rest
            self._wait(self._call(self._when_written))

    @contextlib.contextmanager
    def _holding(self) -> Iterator[None]:
        """The lock, for a thread other than the I/O thread (which holds it already)."""
        if threading.current_thread() is self._thread:
            yield
            return
        if not self._shared.acquire(timeout=self._request_timeout):
            raise TimeoutError(f"the RabbitMQ connection stayed busy for request_timeout="
                               f"{self._request_timeout} s")
        try:
            yield
        finally:
            self._shared.release()

    def _wait(self, future: Future[T]) -> T:
        if threading.current_thread() is self._thread:
            raise RuntimeError("a blocking transport call on the I/O thread would deadlock")
        try:
            return future.result(timeout=self._request_timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(
                f"RabbitMQ did not answer within request_timeout={self._request_timeout} s"
            ) from None

    def _run_here(self, work: Callable[[], None]) -> bool:
        """Run ``work`` on the calling thread (the lock held) and write the frames it
        has pika emit straight to the socket; True when nothing is left to write. What
        the socket does not take goes to pika's send buffer, which the I/O loop writes
        as the socket drains (it is woken to watch for that: a poller may not see a
        watch added while it waits).

        Left to itself pika would buffer each frame as a chunk of its own, turn on the
        loop's write watch (which wakes the I/O thread only to find the lock taken) and
        write every chunk with a ``send`` of its own, three per published message. Here
        the frames of one call are joined, up to ``_WRITE_AT`` bytes at a time, and each
        such run goes out in one ``send`` (see :class:`_DirectWrites`). Only pika's
        plaintext transport is written this way, and only while its buffer is empty
        (so the order of bytes on the wire holds); otherwise pika writes as usual."""
        stream = getattr(self._connection, "_transport", None)
        if (isinstance(stream, _PLAINTEXT) and stream._state == stream._STATE_ACTIVE
                and not stream.get_write_buffer_size()):
            writes = _DirectWrites(stream)
            stream.write = writes.write  # shadows the method while this thread has pika
            try:
                work()
            finally:
                del stream.write
                writes.flush()
        else:
            work()
        if self._all_written():
            return True
        self._ioloop.add_callback_threadsafe(_nothing)
        return False

    def _all_written(self) -> bool:
        """Nothing waits in pika's send buffer (the lock held)."""
        stream = getattr(self._connection, "_transport", None)
        return stream is None or not stream.get_write_buffer_size()

    def _when_written(self, future: Future[None], after: float = 0.0) -> None:
        """Resolve ``future`` once pika's send buffer is empty (the lock held, on any
        thread); until then look again on the I/O thread after its next writes, at
        ``after`` seconds at the earliest. A lost connection fails it meanwhile
        (``_fail_inflight``)."""
        if self._all_written():
            _resolve(future, None)
            return

        def again() -> None:
            self._when_written(future, 0.001)

        if threading.current_thread() is self._thread:
            self._ioloop.call_later(after, again)
        else:  # a timer added here would wait for the end of the loop's current wait
            self._ioloop.add_callback_threadsafe(again)

    def _forget(self, future: Future[Any]) -> None:
        with self._lock:
            self._inflight.discard(future)

    def _down(self) -> BaseException:
        reason = f": {self._loss!r}" if self._loss is not None else ""
        error: BaseException = pika.exceptions.ConnectionWrongStateError(
            f"the connection to RabbitMQ is closed{reason}")
        return error

    def _on_channel(self, future: Future[Any], then: Callable[[Any], None]) -> None:
        """Open a short-lived channel whose closing by the broker fails ``future``."""

        def opened(channel: Any) -> None:
            channel.add_on_close_callback(lambda _ch, reason: _fail(future, _as_error(reason)))
            then(channel)

        self._connection.channel(on_open_callback=_guarded(future, opened))

    # -- the I/O thread ----------------------------------------------------------------
    def _run(self) -> None:
        with self._shared:
            try:
                self._ioloop.start()
            except Exception:  # a bug in a callback; callers are failed below
                log.exception("the RabbitMQ I/O loop failed")
            finally:
                self._alive = False
                self._fail_inflight(self._loss or self._down())
                self._ioloop.close()

    def _on_connected(self, opened: Future[None], result: object) -> None:
        if isinstance(result, BaseException):
            _fail(opened, _opening_error(result))
            self._ioloop.stop()
            return
        connection: Any = result
        self._connection = connection
        connection.add_on_close_callback(self._on_connection_closed)
        if not _frames.install(connection):  # larger reads, fewer copies (decision 0110)
            log.warning("pika %s lacks what the adapter's frame reader uses: the "
                        "connection reads as pika does, at more CPU per message",
                        pika.__version__)
        with self._lock:
            self._alive = True
        if self._closing:  # close() came first
            connection.close()
        _resolve(opened, None)

    def _abort_opening(self) -> None:
        self._closing = True
        if self._connection is not None:
            self._connection.close()
        else:
            try:
                self._workflow.abort()
            except connection_workflow.AMQPConnectorException:
                self._ioloop.stop()

    def _close_connection(self) -> None:
        connection = self._connection
        if connection is not None and not (connection.is_closed or connection.is_closing):
            connection.close()
        else:
            _resolve(self._closed, None)
            self._ioloop.stop()

    def _on_connection_closed(self, _connection: object, reason: object) -> None:
        error = _as_error(reason)
        with self._lock:
            self._alive = False
            if not self._closing:
                self._loss = error
                log.warning("connection to RabbitMQ lost: %r", error)
        self._publisher.fail(error)
        self._fail_inflight(error)
        _resolve(self._closed, None)
        self._ioloop.stop()

    def _fail_inflight(self, error: BaseException) -> None:
        with self._lock:
            waiting = list(self._inflight)
            self._inflight.clear()
        for future in waiting:
            _fail(future, error)


class _ReleasingPoll:
    """The kernel poll object of pika's poller, releasing ``lock`` while it waits."""

    def __init__(self, poll: Any, lock: threading.Lock) -> None:
        self._poll = poll
        self._lock = lock

    def poll(self, timeout: float) -> Any:
        self._lock.release()
        try:
            return self._poll.poll(timeout)
        finally:
            self._lock.acquire()

    def register(self, fileno: int, events: int) -> None:
        self._poll.register(fileno, events)

    def modify(self, fileno: int, events: int) -> None:
        self._poll.modify(fileno, events)

    def unregister(self, fileno: int) -> None:
        self._poll.unregister(fileno)

    def close(self) -> None:
        close = getattr(self._poll, "close", None)  # select.poll objects have none
        if close is not None:
            close()


def _release_while_waiting(ioloop: IOLoop, lock: threading.Lock) -> bool:
    """Make ``ioloop``'s thread, which holds ``lock`` while it runs the loop, release it
    exactly while it waits in the kernel (``epoll_wait``/``poll``) for the socket or a
    timer, so that another thread may take it and use pika meanwhile. pika's poller
    creates its kernel poll object when the loop starts (``_init_poller``); it is wrapped
    then. Every handler the loop runs after a wait re-reads which events are still
    wanted, so a write another thread made meanwhile is not repeated.

    Only pika's epoll and poll pollers (Linux, and wherever pika is told to use them)
    wait through such an object; False for the others (kqueue, select): the loop's
    thread then keeps the lock and every call is handed to it."""
    poller: Any = ioloop._poller
    if not isinstance(poller, PollPoller) or not hasattr(poller, "_init_poller"):
        return False
    create = poller._init_poller

    def init() -> None:
        create()
        poller._poll = _ReleasingPoll(poller._poll, lock)

    poller._init_poller = init
    return True


def _nothing() -> None:
    """A callback that only wakes the I/O loop."""


class _DirectWrites:
    """The frames one call has pika emit, sent on its stream's socket as they come: in
    runs of ``_WRITE_AT`` bytes, each joined into one ``send``, as far as the socket takes
    them without blocking. From the first run the socket does not take whole, the rest
    goes to pika's send buffer (its own ``write``), and so does everything if the socket
    fails, so pika meets the failure and closes the connection the way it always does.
    """

    __slots__ = ("_parts", "_queued", "_size", "_stream")

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._parts: list[bytes] = []
        self._size = 0
        self._queued = False  # pika's buffer holds some: the rest must follow it

    def write(self, data: bytes) -> None:
        self._parts.append(data)
        self._size += len(data)
        if self._size >= _WRITE_AT:
            self.flush()

    def flush(self) -> None:
        parts = self._parts
        if not parts:
            return
        data = b"".join(parts) if len(parts) > 1 else parts[0]
        self._parts, self._size = [], 0
        stream = self._stream
        if self._queued:
            type(stream).write(stream, data)  # pika's own, which the instance shadows
            return
        try:
            sent = stream._sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            sent = 0  # pika's own write meets it again and aborts the connection
        if sent < len(data):
            type(stream).write(stream, data[sent:] if sent else data)
            self._queued = True


def _declare_one(channel: Any, item: Declaration, done: Callable[[Any], None]) -> None:
    if isinstance(item, Exchange):
        channel.exchange_declare(item.name, item.type, passive=item.passive,
                                 durable=item.durable, auto_delete=item.auto_delete,
                                 callback=done)
    elif isinstance(item, Queue):
        channel.queue_declare(item.name, passive=item.passive, durable=True,
                              arguments=dict(item.arguments) or None, callback=done)
    elif isinstance(item, Binding):
        channel.queue_bind(item.queue, item.exchange, routing_key="", callback=done)
    else:  # pragma: no cover - the union is closed
        raise TypeError(f"not a declaration: {item!r}")


_REFUSED: tuple[type[BaseException], ...] = (
    pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError,
    pika.exceptions.ProbableAccessDeniedError)


def _opening_error(error: BaseException) -> BaseException:
    """The most telling reason a connection failed (pika wraps each host's attempt):
    refused credentials first, then the last attempt's cause."""
    if isinstance(error, connection_workflow.AMQPConnectionWorkflowFailed):
        causes: list[BaseException] = [_opening_error(attempt) for attempt in error.exceptions]
        refused = [cause for cause in causes if isinstance(cause, _REFUSED)]
        return (refused or causes or [error])[-1]
    if isinstance(error, connection_workflow.AMQPConnectorPhaseErrorBase):
        inner: BaseException = error.exception
        return _opening_error(inner)
    return error


_PENDING: Any = object()


class _Batch:
    """The confirms of one ``publish`` call, filled in on the I/O thread."""

    __slots__ = ("future", "remaining", "results")

    def __init__(self, size: int) -> None:
        self.results: list[Any] = [_PENDING] * size
        self.remaining = size
        self.future: Future[None] | None = None

    def set(self, index: int, outcome: BaseException | None) -> None:
        if self.results[index] is _PENDING:
            self.results[index] = outcome
            self.remaining -= 1
            if self.remaining == 0 and self.future is not None:
                _resolve(self.future, None)

    def finish(self, unanswered: BaseException | None) -> list[BaseException | None]:
        return [unanswered if result is _PENDING else result for result in self.results]


class _Publisher:
    """The confirm-mode channel, shared by every sender (under the lock)."""

    def __init__(self, transport: PikaTransport) -> None:
        self._transport = transport
        self._channel: Any = None
        self._opening = False
        self._waiting: list[tuple[Sequence[Publish], _Batch, Future[None]]] = []
        self._pending: dict[int, tuple[_Batch, int]] = {}  # delivery tag -> batch, index
        self._sequence = 0

    def publish(self, messages: Sequence[Publish], batch: _Batch, future: Future[None]
                ) -> None:
        batch.future = future
        if self._channel is not None:
            self._send(messages, batch)
            return
        self._waiting.append((messages, batch, future))
        if not self._opening:
            self._opening = True
            self._transport._connection.channel(on_open_callback=self._on_open)

    def _on_open(self, channel: Any) -> None:
        channel.add_on_close_callback(self._on_closed)
        try:
            channel.confirm_delivery(self._on_confirm,
                                     callback=lambda _frame: self._ready(channel))
        except Exception as error:  # the waiting batches must hear of it
            self._opening = False
            self.fail(error)
            channel.close()

    def _ready(self, channel: Any) -> None:
        self._channel, self._opening, self._sequence = channel, False, 0
        waiting, self._waiting = self._waiting, []
        for messages, batch, future in waiting:
            try:
                self._send(messages, batch)
            except Exception as error:
                _fail(future, error)

    def _send(self, messages: Sequence[Publish], batch: _Batch) -> None:
        channel, pending = self._channel, self._pending
        for index, message in enumerate(messages):
            self._sequence += 1
            pending[self._sequence] = (batch, index)
            try:
                channel.basic_publish(message.exchange, message.routing_key, message.body,
                                      message.properties)
            except Exception as error:
                # pika encodes a frame completely before writing it, so nothing of this
                # message went out: the broker's tag count must not move either.
                del pending[self._sequence]
                self._sequence -= 1
                batch.set(index, error)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        outcome = None if isinstance(method, pika.spec.Basic.Ack) else BrokerNack(
            "the broker refused the message (basic.nack)")
        tag, pending = method.delivery_tag, self._pending
        if method.multiple:
            while pending:
                first = next(iter(pending))
                if first > tag:
                    break
                batch, index = pending.pop(first)
                batch.set(index, outcome)
        else:
            entry = pending.pop(tag, None)
            if entry is not None:
                entry[0].set(entry[1], outcome)

    def _on_closed(self, channel: Any, reason: object) -> None:
        if channel is self._channel or self._opening:
            self._channel, self._opening = None, False
            self.fail(_as_error(reason))

    def fail(self, error: BaseException) -> None:
        """Every unconfirmed message gets ``error``: it may or may not have arrived."""
        pending, self._pending = self._pending, {}
        for batch, index in pending.values():
            batch.set(index, error)
        waiting, self._waiting = self._waiting, []
        for _messages, _batch, future in waiting:
            _fail(future, error)


class _Consumer:
    """One consuming channel (see :class:`~messaging_rabbitmq._transport.ConsumerChannel`)."""

    def __init__(self, transport: PikaTransport, queue: str, prefetch: int, sink: Sink
                 ) -> None:
        self._transport = transport
        self._queue = queue
        self._prefetch = prefetch
        self._sink = sink
        self._channel: Any = None
        self._tag: str | None = None
        self._started: Future[None] | None = None
        self._stopping: Future[bool] | None = None
        self._closing: Future[None] | None = None
        self._lost: BaseException | None = None
        self._unsettled: dict[int, None] = {}  # delivery tags in arrival order (the lock)
        # Deliveries of the current pass of the I/O loop, handed to the sink together
        # when the pass ends (_hand_over): a receiver woken for the first of a burst
        # would take it alone, ack it alone, and wake again for the next.
        self._arrived: list[Arrival] = []

    # -- under the lock (a caller's or the I/O thread's) ---------------------------------
    def start(self, future: Future[None]) -> None:
        self._started = future

        def opened(channel: Any) -> None:
            self._channel = channel
            channel.add_on_close_callback(self._on_closed)
            channel.add_on_cancel_callback(self._on_cancelled)

            def consume(_frame: Any) -> None:
                self._tag = channel.basic_consume(self._queue, self._on_message,
                                                  auto_ack=False,
                                                  callback=lambda _ok: _resolve(future, None))

            channel.basic_qos(prefetch_count=self._prefetch,
                              callback=_guarded(future, consume))

        self._transport._connection.channel(on_open_callback=_guarded(future, opened))

    def _on_message(self, _channel: Any, method: Any, properties: Any, body: bytes) -> None:
        tag = method.delivery_tag
        self._unsettled[tag] = None
        if not self._arrived:
            # The loop runs due timers right after the socket handlers of its pass.
            self._transport._ioloop.call_later(0, self._hand_over)
        self._arrived.append((tag, method.routing_key, method.redelivered, properties, body))

    def _hand_over(self) -> None:
        arrived, self._arrived = self._arrived, []
        if arrived and self._lost is None:
            self._sink.deliver(arrived)

    def _on_cancelled(self, frame: Any) -> None:
        self._lost = pika.exceptions.ConsumerCancelled(
            f"the broker cancelled the consumer of {self._queue!r} (queue deleted?)")
        self._sink.failed(self._lost)
        if self._channel is not None and self._channel.is_open:
            self._channel.close()

    def _on_closed(self, _channel: Any, reason: object) -> None:
        self._unsettled.clear()
        self._arrived.clear()  # back with the broker, as every unsettled one
        error = _as_error(reason)
        if self._started is not None:
            _fail(self._started, error)  # basic.consume refused (e.g. no such queue)
        if self._stopping is not None:
            _resolve(self._stopping, False)  # pika drops the replies it still awaited
        if self._closing is not None:
            _resolve(self._closing, None)
        elif self._lost is None:
            self._lost = error
            self._sink.failed(error)

    def _ack_frames(self, tags: Sequence[int]) -> None:
        """Buffer the ack frames for ``tags`` (the lock held)."""
        channel = self._channel
        if channel is None or not channel.is_open or self._lost is not None:
            raise StaleDelivery(f"the consumer channel of {self._queue!r} is closed")
        method = channel.basic_ack
        wanted, unsettled = set(tags), self._unsettled
        prefix: list[int] = []
        for tag in unsettled:  # arrival order is tag order
            if tag not in wanted:
                break
            prefix.append(tag)
        if prefix:
            method(prefix[-1], len(prefix) > 1)
            for tag in prefix:
                del unsettled[tag]
        unknown = []
        for tag in sorted(wanted.difference(prefix)):
            if tag in unsettled:
                del unsettled[tag]
                method(tag, False)
            else:
                unknown.append(tag)
        if unknown:  # settling them would make the broker close the channel
            raise ValueError(f"delivery tags {unknown} are not unsettled on this channel")

    def _stop(self, future: Future[bool]) -> None:
        channel, tag = self._channel, self._tag
        if channel is None or not channel.is_open or self._lost is not None or tag is None:
            _resolve(future, False)
            return
        cancel = pika.spec.Basic.Cancel(consumer_tag=tag, nowait=False)
        # A quorum queue may still send deliveries that were on their way to this
        # channel's process after the cancel-ok; one more round trip on the channel
        # (a basic.qos with the same prefetch, which changes nothing) lets them through
        # first, as the channel process answers in order.
        def stopped(_ok: Any) -> None:
            self._hand_over()  # "every delivery before the cancel-ok has reached the sink"
            _resolve(future, True)

        def cancelled(_frame: Any) -> None:
            if not channel.is_open or self._lost is not None:
                # The broker cancelled the consumer meanwhile (its queue was deleted) and
                # the channel is closing: everything unsettled is back with the broker.
                _resolve(future, False)
                return
            channel.basic_qos(prefetch_count=self._prefetch,
                              callback=_guarded(future, stopped))

        self._stopping = future  # a channel closing before the answers resolves it
        done = _guarded(future, cancelled)
        try:
            # Channel.basic_cancel would make pika reject (requeue) every delivery still
            # on its way, and each such requeue counts as a delivery on a quorum queue.
            # Sending the cancel through the channel's RPC path keeps those deliveries
            # flowing to the sink until the cancel-ok, so the driver can give them back
            # uncounted.
            rpc = channel._rpc
        except AttributeError:  # a pika without it: accept the count
            channel.basic_cancel(tag, callback=done)
            return
        rpc(cancel, done, [(pika.spec.Basic.CancelOk, {"consumer_tag": tag})])

    def _close(self, future: Future[None]) -> None:
        channel = self._channel
        if channel is None or channel.is_closed or channel.is_closing:
            _resolve(future, None)
            return
        self._closing = future
        channel.close()

    # -- any thread ---------------------------------------------------------------------
    def ack(self, tags: Sequence[int]) -> None:
        self._transport._send(lambda: self._ack_frames(tags))

    def stop(self) -> bool:
        if not self._transport.alive:
            return False
        try:
            return self._transport._wait(self._transport._call(self._stop))
        except pika.exceptions.ConnectionWrongStateError:
            return False

    def close(self) -> None:
        if not self._transport.alive:
            return  # the broker already took everything back with the connection
        try:
            self._transport._wait(self._transport._call(self._close))
        except pika.exceptions.ConnectionWrongStateError:
            return  # lost meanwhile: same as above

    def native(self) -> object:
        return self._channel
