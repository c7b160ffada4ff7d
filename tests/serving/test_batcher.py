"""Micro-batching: concurrent requests share one call; a failure reaches every waiter."""
import asyncio


from guanxi.serving.batcher import MicroBatcher


def test_requests_started_together_share_one_call():
    calls = []

    def fn(keys):
        calls.append(list(keys))
        return [k * 2 for k in keys]

    async def main():
        b = MicroBatcher(fn, max_batch=4)
        out = await asyncio.gather(*(b.submit(i) for i in range(10)))
        alone = await b.submit(7)
        return out, alone

    out, alone = asyncio.run(main())
    assert out == [i * 2 for i in range(10)] and alone == 14
    assert [len(c) for c in calls] == [4, 4, 2, 1]


def test_an_error_reaches_every_waiter():
    def fn(keys):
        raise RuntimeError("scoring failed")

    async def main():
        b = MicroBatcher(fn)
        return await asyncio.gather(*(b.submit(i) for i in range(3)), return_exceptions=True)

    out = asyncio.run(main())
    assert all(isinstance(e, RuntimeError) for e in out)
