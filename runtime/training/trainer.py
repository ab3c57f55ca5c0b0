"""One training run: data → plan → model → TRL SFTTrainer with our callbacks → outputs.

The loop is TRL's SFTTrainer (transformers Trainer); auto-learning, divergence control,
metrics and Ctrl+C are callbacks. The resolved plan is saved beside the checkpoints so a
resumed run uses the same hyperparameters.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from llm_runtime.training import board, callbacks, circular, moe, outputs, params
from llm_runtime.training import model as models
from llm_runtime.training.callbacks import say
from llm_runtime.training.data import vision
from llm_runtime.training.data.loader import load_examples
from llm_runtime.training.data.prepare import PreparedData, describe, prepare
from llm_runtime.training.data.render import ensure_chat_template
from llm_runtime.training.errors import ResumeError, TrainingError, is_out_of_memory, out_of_memory
from llm_runtime.training.families import require_trainable
from llm_runtime.training.options import TrainOptions, TrainPaths
from llm_runtime.training.params import TrainPlan
from llm_runtime.training.report import build_report, history_entry, now_iso

EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class RunResult:
    report: dict
    exit_code: int


def find_resume_checkpoint(options: TrainOptions) -> Path | None:
    if options.resume_from:
        path = options.resume_from
        if not (path / "trainer_state.json").is_file():
            raise ResumeError(f"{path} is not a training checkpoint (no trainer_state.json)")
        return path
    if not options.resume:
        return None
    folder = options.paths.checkpoints
    last = outputs.latest_complete_checkpoint(folder)
    if last is None:
        raise ResumeError(f"no complete checkpoint-N folder in {folder} to resume from")
    return last


def _saved_plan(paths: TrainPaths, resuming: bool) -> TrainPlan | None:
    if resuming and paths.plan.is_file():
        return TrainPlan.from_dict(json.loads(paths.plan.read_text(encoding="utf-8")))
    return None


def _plan(
    options,
    facts,
    data: PreparedData | vision.VisionData,
    method: str,
    saved: TrainPlan | None,
    seq: int,
    spec_targets: tuple[str, ...] | None,
) -> TrainPlan:
    if saved is not None:
        return saved
    plan = params.make_plan(
        options,
        facts,
        method=method,
        train_items=len(data.train),
        examples=len(data.loaded.examples),
        task_type=data.loaded.task_type,
        max_seq_length=seq,
        family_targets=spec_targets,
    )
    return models.plan_from_adapter(plan, options.from_adapter) if options.from_adapter else plan


def describe_plan(plan: TrainPlan, facts: params.ModelFacts) -> str:
    effective = plan.batch_size * plan.gradient_accumulation_steps
    stop = "on" if plan.autolearn.enabled else "off"
    epochs = "∞" if plan.epochs >= params.NON_STOP_EPOCHS else f"{plan.epochs:g}"
    targets = (
        ",".join(plan.target_modules or ("all-linear",)) if plan.method != "moe-lora" else "experts"
    )
    lines = [
        f"⚙️  {plan.method} on {facts.device} | model {facts.parameters / 1e6:.1f}M params | "
        f"mode {plan.mode}",
        f"   LoRA r={plan.lora_r} alpha={plan.lora_alpha} on {targets} | lr {plan.learning_rate:.2e} | "
        f"batch {plan.batch_size}×{plan.gradient_accumulation_steps}={effective} | epochs {epochs} | "
        f"steps {plan.max_steps} | eval every {plan.eval_steps} | seq {plan.max_seq_length}",
        f"   auto-stop {stop}: patience {plan.autolearn.patience}, overfitting threshold "
        f"{plan.autolearn.overfitting_threshold:.0%}, min evaluations {plan.autolearn.min_evaluations}",
    ]
    if plan.batch_stages:
        lines.append(f"   circular: batch size {circular.describe(plan.batch_stages)}")
    if plan.autolearn.adaptive:
        lines.append(
            "   adaptive: the learning rate and the evaluation interval follow the validation trend"
        )
    return "\n".join(lines)


def sft_config(
    plan: TrainPlan, options: TrainOptions, device: str, has_eval: bool, *, images: bool = False
):
    """TRL's settings from the plan; with images no truncation (it would cut image tokens)."""
    from trl import SFTConfig

    bf16 = device == "cuda" and models.bf16_native()  # the dtype load_model chose
    return SFTConfig(
        output_dir=str(options.paths.checkpoints),
        max_steps=plan.max_steps,
        num_train_epochs=plan.epochs,
        per_device_train_batch_size=plan.batch_size,
        per_device_eval_batch_size=plan.batch_size,
        gradient_accumulation_steps=plan.gradient_accumulation_steps,
        learning_rate=plan.learning_rate,
        lr_scheduler_type=plan.scheduler,
        warmup_steps=min(100, plan.max_steps // 30),
        optim=plan.optimizer,
        gradient_checkpointing=plan.gradient_checkpointing,  # explicit: TRL's default is on
        logging_steps=max(1, min(plan.eval_steps, 10)),
        eval_strategy="steps" if has_eval else "no",
        eval_steps=plan.eval_steps,
        save_strategy="steps",
        save_steps=plan.eval_steps,
        save_total_limit=3,
        load_best_model_at_end=has_eval,
        metric_for_best_model="eval_loss" if has_eval else None,
        greater_is_better=False if has_eval else None,
        max_length=None if images else plan.max_seq_length,
        packing=False,
        report_to="none",
        seed=options.seed,
        bf16=bf16,
        fp16=device == "cuda" and not bf16,
        use_cpu=device == "cpu",
        disable_tqdm=not sys.stdout.isatty(),
        dataloader_num_workers=0,
    )


def quiet_libraries() -> None:
    """Progress bars of datasets/transformers only on a terminal; our own lines say what happens."""
    if sys.stdout.isatty():
        return
    import datasets
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()


@contextlib.contextmanager
def ctrl_c(interrupt: callbacks.InterruptCallback):
    """First Ctrl+C: finish the step, save, stop. Second: abort at once."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handle(signum, frame):
        if interrupt.requested:
            raise KeyboardInterrupt
        interrupt.requested = True
        say("\n⏸  Interrupted: saving a resumable checkpoint… (Ctrl+C again to abort)")

    for sig in previous:  # SIGTERM too: `docker stop` gets the same resumable checkpoint
        signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Run:
    """State shared by the steps of one run."""

    def __init__(self, options: TrainOptions):
        self.options = options
        self.paths = options.paths
        self.started, self.clock = now_iso(), time.monotonic()
        self.train_seconds = 0.0
        self.batch_changes: list[dict] = []

    def prepare(self) -> None:
        options = self.options
        self.spec = models.read_spec(options.model_dir)
        self.device = models.pick_device(options.device)
        self.method = options.method or ("moe-lora" if self.spec.is_moe else "lora")
        if self.method == "moe-lora" and not self.spec.is_moe:
            raise TrainingError(
                "--method moe-lora needs a Mixture-of-Experts model; use --method lora"
            )
        models.check_method(self.method, options.use_8bit, self.device, options.optimizer)
        self.resume_from = find_resume_checkpoint(options)
        self.processor = models.load_processor(self.spec) if self.spec.multimodal else None
        self.tokenizer = (
            self.processor.tokenizer if self.processor else models.load_tokenizer(self.spec)
        )
        if self.processor is not None and not getattr(self.processor, "chat_template", None):
            raise TrainingError(
                f"{options.model_dir}: the processor has no chat template, so image+caption "
                "records cannot be rendered; add chat_template.json from the model's repository"
            )
        self.fallback_template = not self.processor and ensure_chat_template(self.tokenizer)
        loaded = load_examples(
            options.data,
            dataset_format=options.dataset_format,
            max_examples=options.max_examples,
            seed=options.seed,
        )
        vision.check_pairing(loaded, multimodal=self.spec.multimodal, model_dir=options.model_dir)
        self.model = models.load_model(
            self.spec, method=self.method, use_8bit=options.use_8bit, device=self.device
        )
        self.facts = models.model_facts(self.model, self.device)
        saved = _saved_plan(self.paths, self.resume_from is not None)
        seq = (
            saved.max_seq_length
            if saved
            else options.max_seq_length or params.default_seq_length(self.facts)
        )
        if self.processor is not None:
            self.data: PreparedData | vision.VisionData = vision.prepare(
                loaded, self.processor, validation_split=options.validation_split, seed=options.seed
            )
        else:
            self.data = prepare(
                loaded,
                self.tokenizer,
                max_seq_length=seq,
                validation_split=options.validation_split,
                seed=options.seed,
                fit_blocks=saved is None and options.max_seq_length is None,
            )
        say(describe(self.data, self.tokenizer, color=sys.stdout.isatty()))
        self.plan = _plan(
            options, self.facts, self.data, self.method, saved, seq, self.spec.target_modules
        )
        if self.resume_from is None:
            self._set_aside_previous_run()
        outputs.write_json_atomically(self.paths.plan, self.plan.to_dict())
        say(describe_plan(self.plan, self.facts))

    def _set_aside_previous_run(self) -> None:
        """A fresh run starts with an empty checkpoints/: an earlier run's folders move aside."""
        paths = self.paths
        aside = outputs.set_aside_previous_run(
            paths.checkpoints, (paths.best, paths.last, paths.plan)
        )
        if aside is not None:
            say(
                f"📦 An earlier run's checkpoints (its best/ and last/ too) moved to {aside}\n"
                "   This is a fresh run; --resume continues the latest run instead. "
                "Delete that folder when you no longer need it."
            )

    def build_trainer(self):
        from transformers.trainer_callback import PrinterCallback
        from trl import SFTTrainer

        options, plan = self.options, self.plan
        wrapped = models.wrap(
            self.model,
            plan,
            train_router=options.train_router,
            router_aux_loss_coef=options.router_aux_loss_coef,
            from_adapter=options.from_adapter,
        )
        self.wrapped = wrapped
        self.state = callbacks.load_autolearn_state(self.resume_from)
        self.writer = callbacks.ScalarWriter(
            outputs.events_folder(self.paths.logs, self.resume_from is not None)
        )
        self.expert_monitor = (
            moe.ExpertLoadMonitor(wrapped.model, wrapped.moe_targets)
            if wrapped.moe_targets
            else None
        )
        self.autolearn = callbacks.AutoLearningCallback(plan.autolearn, self.state, self.writer)
        self.metrics = callbacks.MetricsCallback(self.writer, self.expert_monitor)
        self.interrupt = callbacks.InterruptCallback()
        train, validation = self.data.as_datasets()
        trainer_class = circular.trainer_class(SFTTrainer) if plan.batch_stages else SFTTrainer
        trainer = trainer_class(
            model=wrapped.model,
            args=sft_config(
                plan, options, self.device, validation is not None, images=bool(self.processor)
            ),
            train_dataset=train,
            eval_dataset=validation,
            processing_class=self.processor or self.tokenizer,
            callbacks=[
                self.autolearn,
                callbacks.DivergenceCallback(self.state),
                self.metrics,
                self.interrupt,
                callbacks.FinalStepCallback(validation is not None),
            ],
        )
        trainer.remove_callback(PrinterCallback)  # MetricsCallback prints a compact line instead
        if plan.batch_stages:
            trainer.schedule, trainer.step_limit = plan.batch_stages, plan.max_steps
            trainer.cycles = int(math.ceil(plan.epochs))
            trainer.on_batch_change = self._batch_changed
        return trainer

    def _batch_changed(self, cycle: int, batch: int) -> None:
        self.batch_changes.append({"cycle": cycle + 1, "batch_size": batch})
        self.writer.scalar("batch_size", batch, cycle)
        say(f"🔁 cycle {cycle + 1}: batch size {batch}")

    def train(self, trainer) -> None:
        with ctrl_c(self.interrupt):
            started = time.monotonic()
            try:
                trainer.train(
                    resume_from_checkpoint=str(self.resume_from) if self.resume_from else None
                )
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                self.finish(trainer, "out_of_memory", save_adapter=False)
                raise out_of_memory(error) from error
            finally:
                self.train_seconds = time.monotonic() - started

    def interrupt_ends_run(self, trainer) -> bool:
        """Non-stop mode has no other end than Ctrl+C: then its best adapter goes to lora/
        (restored by the Trainer), once there is one: an evaluation, or no validation set."""
        if self.plan.mode != "non-stop":
            return False
        if trainer.eval_dataset is not None and not self.state.evaluations:
            say("   No evaluation yet, so no best adapter: lora/ was left unchanged.")
            return False
        return True

    def stop_reason(self, trainer) -> str:
        if self.interrupt.honoured:
            return "interrupted"
        if self.state.stop_reason:
            return self.state.stop_reason
        return "max_epochs" if self.options.max_steps is None else "max_steps"

    def finish(self, trainer, reason: str, *, save_adapter: bool) -> dict:
        last = outputs.latest_checkpoint(self.paths.checkpoints, trainer.state.global_step)
        if last is not None:
            outputs.copy_checkpoint(last, self.paths.last)
        best = trainer.state.best_model_checkpoint
        if best and Path(best).is_dir():
            outputs.copy_checkpoint(Path(best), self.paths.best)
        report = self._report(trainer, reason, self._moe_info())
        if save_adapter:
            report = self._save_adapter(trainer, report)
        outputs.write_json_atomically(self.paths.report, report)
        outputs.append_history(self.paths.history, history_entry(report))
        outputs.plot_history(
            trainer.state.log_history, self.paths.plot, self.state.best_step or None
        )
        self.writer.close()
        return report

    def _save_adapter(self, trainer, report: dict) -> dict:
        """Write lora/ (finetuned/ for a whole model); returns the report with what was checked."""
        target = (
            self.paths.lora if self.method != "full" else self.paths.lora.with_name("finetuned")
        )
        info = {**report, "base_model": str(self.spec.model_dir), "adapter": str(target)}
        # A whole model is served from its folder: it needs the processor (or tokenizer) too.
        processing = self.processor or self.tokenizer
        keep = self.fallback_template or self.method == "full"
        checked: dict = {}

        def check_experts(folder: Path) -> dict:
            """Before the swap: an adapter missing expert weights must not replace lora/."""
            predicted = self.wrapped.predicted_adapter_parameters
            if report.get("moe") and predicted is not None:
                saved = moe.check_adapter_size(folder, predicted)
                checked["moe"] = {**report["moe"], "adapter_parameters_saved": saved}
            return checked

        outputs.save_adapter(
            trainer.model, target, info, processing if keep else None, check=check_experts
        )
        best = self.state.best_step if trainer.state.best_model_checkpoint else None
        say(f"✅ Adapter saved: {target}" + (f" (the best weights, step {best})" if best else ""))
        return {**report, **checked}

    def _moe_info(self) -> dict | None:
        if not self.wrapped.moe_targets:
            return None
        targets = self.wrapped.moe_targets
        return {
            "num_experts": targets.num_experts,
            "expert_parameters": list(targets.expert_parameters),
            "router_trained": self.options.train_router,
            "aux_loss": self.metrics.aux_losses[-1] if self.metrics.aux_losses else None,
            "expert_load": self.metrics.expert_load,
            "adapter_parameters_expected": self.wrapped.predicted_adapter_parameters,
        }

    def _report(self, trainer, reason: str, moe_info: dict | None) -> dict:
        targets = self.wrapped.moe_targets
        extra = {
            "target_modules": list(targets.linear_modules)
            if targets
            else list(self.plan.target_modules or ["all-linear"])
        }
        if targets:
            extra["target_parameters"] = list(targets.expert_parameters)
        circular_info = (
            {"cycles": self.plan.epochs, "batch_sizes": self.batch_changes}
            if self.plan.batch_stages
            else None
        )
        paths = {
            "lora": str(self.paths.lora),
            "checkpoints": str(self.paths.checkpoints),
            "logs": str(self.paths.logs),
            "best_checkpoint": trainer.state.best_model_checkpoint,
            "resumed_from": str(self.resume_from) if self.resume_from else None,
        }
        report = build_report(
            model_id=self.spec.model_id,
            family=self.spec.family,
            started=self.started,
            duration_s=time.monotonic() - self.clock,
            stop_reason=reason,
            plan=self.plan,
            data=self.data,
            state=self.state,
            log_history=trainer.state.log_history,
            global_step=trainer.state.global_step,
            epoch=trainer.state.epoch,
            lora_extra=extra,
            paths=paths,
            moe=moe_info,
        )
        if circular_info:
            report["circular"] = circular_info
        tokens = [e["num_tokens"] for e in trainer.state.log_history if "num_tokens" in e]
        report["throughput"] = {
            "train_seconds": round(self.train_seconds, 3),
            "tokens_seen": tokens[-1] if tokens else None,
            "tokens_per_second": round(tokens[-1] / self.train_seconds, 1)
            if tokens and self.train_seconds
            else None,
        }
        return report


def run(options: TrainOptions) -> RunResult:
    """Train as the options say; returns the report and the process exit code. A family the
    SFT trainer does not fit goes to its own trainer, or is refused before anything loads."""
    quiet_libraries()
    spec = models.read_spec(options.model_dir)
    support = require_trainable(spec.family, options.method)
    if support.trainer is not None and support.trainer != "sft":
        return RunResult(_run_family_trainer(support.trainer, options, spec), 0)
    session = Run(options)
    session.prepare()
    trainer = session.build_trainer()
    dashboard = (
        board.start(options.paths.logs, options.tensorboard_port, options.tensorboard_host)
        if options.tensorboard
        else None
    )
    try:
        session.train(trainer)
        reason = session.stop_reason(trainer)
        interrupted = reason == "interrupted"
        ends_here = interrupted and session.interrupt_ends_run(trainer)
        report = session.finish(trainer, reason, save_adapter=not interrupted or ends_here)
    finally:
        if session.expert_monitor is not None:
            session.expert_monitor.close()
        board.stop(dashboard)
    _summary(report, options.paths, interrupted, ends_here)
    return RunResult(report, EXIT_INTERRUPTED if interrupted and not ends_here else 0)


# Options only the TRL run has: (option, the value that means "not asked for").
SFT_ONLY = (
    ("resume", False), ("resume_from", None), ("circular", False), ("use_8bit", False),
    ("lora_r", None), ("lora_alpha", None), ("target_modules", None), ("train_router", False),
    ("mode", "medium"),
)  # fmt: skip


def require_plain_options(options: TrainOptions, trainer: str) -> None:
    """The family trainers run a plain full fine-tune: refuse options they would ignore."""
    asked = [name for name, unset in SFT_ONLY if getattr(options, name) != unset]
    if asked:
        flags = ", ".join("--" + name.replace("_", "-") for name in asked)
        raise TrainingError(
            f"{flags}: only for causal LMs (TRL); this model trains with {trainer} as a whole "
            "model. Its options: --epochs, --max-steps, --batch-size, --learning-rate, "
            "--max-seq-length, --validation-split, --max-examples, --seed."
        )


def _run_family_trainer(trainer: str, options: TrainOptions, spec: models.ModelSpec) -> dict:
    """The field's own trainer of an embedding, seq2seq or classification model (full)."""
    from llm_runtime.training import sentence, task_trainers

    require_plain_options(options, trainer)
    run_family = {
        "sentence-transformers": sentence.run_sentence_transformers,
        "seq2seq": task_trainers.run_seq2seq,
        "sequence-classification": task_trainers.run_classifier,
    }[trainer]
    return run_family(options, spec.model_dir, spec.code, models.pick_device(options.device))


def _summary(report: dict, paths: TrainPaths, interrupted: bool, saved: bool) -> None:
    metrics = report["final_metrics"]
    say(
        f"🏁 Stopped: {report['stop_reason']} at step {report['global_step']} | best val "
        f"{metrics['best_val_loss']} (step {metrics['best_step']}) | report {paths.report}"
    )
    if saved:
        say(
            "   Non-stop mode ends on Ctrl+C: its adapter is in lora/ (the best checkpoint's when "
            "there is a validation set); --resume trains on."
        )
    elif interrupted:
        say("   Resume with --resume (the adapter in lora/ was left unchanged).")
