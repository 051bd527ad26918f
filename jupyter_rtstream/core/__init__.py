"""Pure protocol core: messages, codec, errors, hub, session, backoff.

Nothing in this package performs I/O or imports tornado, asyncio transports or widgets;
everything here can be driven by a test with plain function calls.
"""
