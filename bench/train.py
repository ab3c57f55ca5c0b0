"""Our trainer vs a plain TRL SFTTrainer + PEFT run: tokens/s and peak memory, side by side.

Both train the same tiny causal LM (random weights, a tokenizer trained on the spot) on the
same chat data, with the same LoRA rank, batch, sequence length, learning rate and number of
steps and gradient checkpointing off (TRL's default is on; our trainer turns it on only when
memory is tight), each in a fresh subprocess. Tokens/s = tokens the trainer saw / wall time of
`trainer.train()`; peak memory = the subprocess's peak RSS. Targets: ≥0.95× tokens/s,
≤1.10× peak memory.

    python bench/train.py [--steps 40] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
WORDS = [
    "red",
    "blue",
    "green",
    "black",
    "white",
    "apple",
    "sky",
    "grass",
    "coal",
    "snow",
    "sun",
    "bear",
    "rose",
    "car",
    "boat",
    "tree",
    "fish",
    "the",
    "is",
    "of",
]
SETTINGS = {"rank": 16, "batch": 8, "seq": 128, "lr": 5e-3}


def build_model(folder: Path) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    rng = random.Random(0)
    corpus = [" ".join(rng.choices(WORDS, k=20)) for _ in range(500)]
    specials = ["<unk>", "<s>", "</s>", "<pad>", "<|im_start|>", "<|im_end|>"]
    core.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=1000, special_tokens=specials))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
    )
    tokenizer.chat_template = TEMPLATE
    tokenizer.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=4,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)


def build_data(path: Path, count: int = 400) -> None:
    rng = random.Random(1)
    records = [
        {
            "messages": [
                {"role": "user", "content": " ".join(rng.choices(WORDS, k=rng.randint(8, 30)))},
                {
                    "role": "assistant",
                    "content": " ".join(rng.choices(WORDS, k=rng.randint(8, 30))),
                },
            ]
        }
        for _ in range(count)
    ]
    path.write_text(json.dumps(records), encoding="utf-8")


def child_ours(model: Path, data: Path, out: Path, steps: int) -> dict:
    from llm_runtime.training.cli import main

    code = main(
        [
            "--model",
            str(model),
            "--data",
            str(data),
            "--output-dir",
            str(out),
            "--no-tensorboard",
            "--lora-r",
            str(SETTINGS["rank"]),
            "--batch-size",
            str(SETTINGS["batch"]),
            "--gradient-accumulation-steps",
            "1",
            "--max-seq-length",
            str(SETTINGS["seq"]),
            "--learning-rate",
            str(SETTINGS["lr"]),
            "--max-steps",
            str(steps),
            "--eval-steps",
            str(steps),
            "--validation-split",
            "0.1",
            "--force-epochs",
            "--no-gradient-checkpointing",
        ]
    )
    report = json.loads((out / "logs" / "training" / "training_report.json").read_text())
    assert code == 0, code
    return {
        "tokens": report["throughput"]["tokens_seen"],
        "seconds": report["throughput"]["train_seconds"],
    }


def child_trl(model: Path, data: Path, out: Path, steps: int) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    records = json.loads(data.read_text())
    dataset = Dataset.from_list(records).train_test_split(test_size=0.1, seed=42)
    tokenizer = AutoTokenizer.from_pretrained(model)
    peft_config = LoraConfig(
        r=SETTINGS["rank"],
        lora_alpha=2 * SETTINGS["rank"],
        lora_dropout=0.05,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    args = SFTConfig(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=SETTINGS["batch"],
        per_device_eval_batch_size=SETTINGS["batch"],
        learning_rate=SETTINGS["lr"],
        max_length=SETTINGS["seq"],
        eval_strategy="steps",
        eval_steps=steps,
        save_steps=steps,
        logging_steps=10,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        gradient_checkpointing=False,
    )
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model),
        args=args,
        train_dataset=dataset["train"],
        eval_dataset=dataset["test"],
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    started = time.monotonic()
    trainer.train()
    seconds = time.monotonic() - started
    tokens = [e["num_tokens"] for e in trainer.state.log_history if "num_tokens" in e][-1]
    return {"tokens": tokens, "seconds": seconds}


CHILDREN = {"ours": child_ours, "trl": child_trl}


def run_child(kind: str, model: Path, data: Path, out: Path, steps: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--model",
        str(model),
        "--data",
        str(data),
        "--out",
        str(out),
        "--steps",
        str(steps),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_main(args) -> None:
    result = CHILDREN[args.child](Path(args.model), Path(args.data), Path(args.out), args.steps)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["tokens_per_second"] = result["tokens"] / result["seconds"]
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each; the best is compared")
    parser.add_argument("--child", choices=sorted(CHILDREN))
    parser.add_argument("--model")
    parser.add_argument("--data")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.child:
        child_main(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_model(root / "model")
        build_data(root / "data.json")
        results = {"ours": [], "trl": []}
        for repeat in range(args.repeats):
            for kind in ("trl", "ours"):  # alternate, so machine load hits both alike
                results[kind].append(
                    run_child(
                        kind,
                        root / "model",
                        root / "data.json",
                        root / f"{kind}-{repeat}",
                        args.steps,
                    )
                )
    print_table(results, args.steps)


def print_table(results: dict, steps: int) -> None:
    best = {k: max(v, key=lambda r: r["tokens_per_second"]) for k, v in results.items()}
    memory = {k: min(r["peak_rss_mb"] for r in v) for k, v in results.items()}
    print(
        f"tiny Llama (hidden 256, 4 layers), LoRA r={SETTINGS['rank']}, batch {SETTINGS['batch']}, "
        f"seq ≤{SETTINGS['seq']}, {steps} steps, CPU; best of {len(results['ours'])} runs each"
    )
    print(f"{'':22}{'TRL+PEFT':>12}{'ours':>12}{'ratio':>9}  target")
    tps = (best["trl"]["tokens_per_second"], best["ours"]["tokens_per_second"])
    print(f"{'tokens/s':22}{tps[0]:>12.0f}{tps[1]:>12.0f}{tps[1] / tps[0]:>8.2f}×  ≥0.95×")
    mem = (memory["trl"], memory["ours"])
    print(f"{'peak RSS (MB)':22}{mem[0]:>12.0f}{mem[1]:>12.0f}{mem[1] / mem[0]:>8.2f}×  ≤1.10×")
    tokens = (best["trl"]["tokens"], best["ours"]["tokens"])
    print(f"{'tokens trained':22}{tokens[0]:>12.0f}{tokens[1]:>12.0f}")


if __name__ == "__main__":
    main()
