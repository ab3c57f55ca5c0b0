"""Circular training: many cycles over a small dataset, the batch size growing stage by stage.

Small batches first give many updates while the loss is high; larger ones later steady the
last cycles. The schedule is a few stages, `((first cycle, batch size), ...)`, with the batch
doubling from stage to stage. The Trainer keeps one batch size per run, so a subclass swaps
the data loader at each cycle (epoch) and counts steps and resume positions by the schedule.
"""

from __future__ import annotations

import math

Stages = tuple[tuple[int, int], ...]


def stages(start: int, cap: int, cycles: int) -> Stages:
    """The batch doubles from `start` up to `cap` in equal stretches of the cycles."""
    sizes = [start]
    while sizes[-1] * 2 <= cap:
        sizes.append(sizes[-1] * 2)
    stretch = max(1, math.ceil(cycles / len(sizes)))
    return tuple((i * stretch, size) for i, size in enumerate(sizes) if i * stretch < cycles)


def batch_for(schedule: Stages, cycle: int) -> int:
    return next(size for first, size in reversed(schedule) if cycle >= first)


def updates_in_cycle(items: int, batch: int, accumulation: int) -> int:
    return math.ceil(math.ceil(items / batch) / accumulation)


def total_updates(schedule: Stages, cycles: int, items: int, accumulation: int) -> int:
    return sum(updates_in_cycle(items, batch_for(schedule, c), accumulation) for c in range(cycles))


def position(schedule: Stages, items: int, accumulation: int, global_step: int) -> tuple[int, int]:
    """(cycle, batches already trained in it) after `global_step` optimizer updates."""
    cycle = 0
    while True:
        updates = updates_in_cycle(items, batch_for(schedule, cycle), accumulation)
        if global_step < updates:
            return cycle, global_step * accumulation
        global_step -= updates
        cycle += 1


def describe(schedule: Stages) -> str:
    return " → ".join(f"{size} (cycle {first + 1})" for first, size in schedule)


def trainer_class(base):
    """`base` (TRL's SFTTrainer) whose data loader follows the schedule, one cycle per epoch."""

    class CircularTrainer(base):  # type: ignore[misc,valid-type]  # a base chosen at run time
        schedule: Stages = ()
        cycles: int = 1
        _train_batch_size: int  # the Trainer's; set per cycle below
        step_limit: int = 0
        on_batch_change = None

        def _items(self) -> int:
            return len(self.train_dataset)

        def set_initial_training_values(self, args, dataloader):
            values = list(super().set_initial_training_values(args, dataloader))
            accumulation = args.gradient_accumulation_steps
            planned = total_updates(self.schedule, self.cycles, self._items(), accumulation)
            values[0] = self.cycles  # num_train_epochs
            values[-1] = min(planned, self.step_limit) if self.step_limit else planned
            return tuple(values)

        def _init_training_state(self, max_steps, *args, **kwargs):
            epochs, batches = super()._init_training_state(max_steps, *args, **kwargs)
            if self.state.global_step:
                accumulation = self.args.gradient_accumulation_steps
                epochs, batches = position(
                    self.schedule, self._items(), accumulation, self.state.global_step
                )
                batches = batches if not self.args.ignore_data_skip else 0
            return epochs, batches

        def _run_epoch(self, **kwargs):
            batch = batch_for(self.schedule, kwargs["epoch"])
            if getattr(self, "_cycle_loader", None) is None or batch != self._train_batch_size:
                self._train_batch_size = batch
                self._cycle_loader = self.get_train_dataloader()
                if self.on_batch_change is not None:
                    self.on_batch_change(kwargs["epoch"], batch)
            steps = len(self._cycle_loader)
            kwargs.update(
                train_dataloader=self._cycle_loader,
                steps_in_epoch=steps,
                num_update_steps_per_epoch=math.ceil(steps / self.args.gradient_accumulation_steps),
            )
            return super()._run_epoch(**kwargs)

    return CircularTrainer
