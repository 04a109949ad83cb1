"""The messaging contract suite: what every backend guarantees, as executable tests.

Run it against any backend, ours or a third party's::

    pytest --pyargs messaging_contracts --messaging-url redis://127.0.0.1:6379/0
    pytest --pyargs messaging_contracts --messaging-url URL --messaging-strict  # CI

or from an adapter's own test module, overriding ``messaging_url``::

    from messaging_contracts.suite import *  # noqa: F403

The suite goes through the public ``messaging`` API only. It is parametrised by
``client.capabilities``: a feature is tested where the backend claims it, and
``UnsupportedFeature`` is asserted at the call where it does not (junit property
``contract_outcome=unsupported``). Only an unreachable broker skips, and the reason names
it. One module per semantic of the design's contract:

=========================  =========================================================
``test_at_least_once``     1: unacked messages come back with ``attempt`` + 1
``test_competing_consumers`` 2: one message, one member of a group
``test_fan_out``           3: every group receives every message
``test_ordering``          4: one key arrives in send order (``per_key``)
``test_replay``            5: a new group starts at the beginning; ``seek``
``test_delay``             6: a delayed message is not delivered early
``test_priority``          7: higher priority first among ready messages
``test_dead_letters``      8: dead letters keep body and headers, plus the reason
``test_limits``            9: over ``max_message_bytes`` raises before sending
``test_honesty``           10: flags match behaviour; nothing silently ignored
``test_group_lifetime``    11: when a group exists and what it receives
``test_wire_format``       12: bytes unchanged, str headers, no envelope
``test_bad_input``         refused at the call, nothing sent
``test_crash``             1 under SIGKILL (a child process; a thread for memory://)
``test_soak``              10,000 messages, 4 members, nacks and abandons (``slow``)
=========================  =========================================================

The plugin (fixtures, options, outcome reporting) is :mod:`messaging_contracts.plugin`.
"""

__all__: list[str] = []
