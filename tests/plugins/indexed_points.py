"""A test plugin: a streamed 1-D dataset whose samples are their own indices, and a callback that
records, on every rank, which samples each epoch's batches held."""

import json

import torch

from advnets import Callback, Component, Data, hookimpl


class Indexed(torch.utils.data.Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.tensor([float(i)])


def indexed_points(n: int = 1000, workers: int = 0) -> Data:
    """Samples 0, 1, ..., n-1 as 1-D points, streamed through a DataLoader."""
    return Data(train=Indexed(n), stream_workers=workers, name="indexed-points")


class RecordSamples(Callback):
    """Write seen-rank<R>.json: for each epoch, the sample indices this rank trained on."""

    all_ranks = True
    state_key = "record-samples"

    def on_fit_start(self, trainer):
        self.seen = {}
        source, draw = trainer.source, trainer.source.next

        def next_recording():
            epoch = trainer.epoch
            batch = draw()
            self.seen.setdefault(epoch, []).extend(int(v) for v in batch.x.reshape(-1).tolist())
            return batch

        source.next = next_recording

    def on_fit_end(self, trainer):
        (trainer.run_dir / f"seen-rank{trainer.rank}.json").write_text(json.dumps(self.seen))


@hookimpl
def register_components(register):
    register(Component(kind="dataset", name="indexed-points", factory=indexed_points))
    register(Component(kind="callback", name="record-samples", factory=RecordSamples))
