"""Format detection on every supported format, mixed folders, globs, lists, and bad files."""

from __future__ import annotations

import pytest
from training_helpers import write_json, write_jsonl

from llm_runtime.training.data.loader import load_examples
from llm_runtime.training.data.prepare import describe, prepare
from llm_runtime.training.errors import DataFormatError, DataSourceError, HubDatasetError

SAMPLES = {
    "alpaca": [{"instruction": "Translate to French", "input": "Hello", "output": "Bonjour"}],
    "sharegpt": [
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}
    ],
    "openai": [
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
            ]
        }
    ],
    "qa": [
        {"question": "Capital of France?", "answer": "Paris", "context": "France is in Europe."}
    ],
    "completion": [{"prompt": "The weather today is", "completion": " sunny."}],
    "text": [{"text": "Plain text for continued pretraining."}],
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_each_json_format_is_detected(tmp_path, name, suffix):
    write = write_json if suffix == ".json" else write_jsonl
    path = write(tmp_path / f"data{suffix}", SAMPLES[name] * 3)
    loaded = load_examples(str(path))
    assert loaded.formats == (name,)
    assert loaded.files[0].total == 3


def test_format_is_read_from_content_not_extension(tmp_path):
    path = tmp_path / "chat.txt"
    path.write_text("\n".join(['{"prompt": "a", "completion": "b"}'] * 2), encoding="utf-8")
    assert load_examples(str(path)).formats == ("completion",)


def test_plain_text_file_is_split_into_paragraphs(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("First paragraph.\nStill first.\n\nSecond paragraph.\n", encoding="utf-8")
    loaded = load_examples(str(path))
    assert loaded.formats == ("text",)
    assert [e.text for e in loaded.examples] == [
        "First paragraph.\nStill first.",
        "Second paragraph.",
    ]
    assert loaded.task_type == "text"


@pytest.mark.parametrize(
    ("header", "row", "expected"),
    [
        ("question,answer", '"What is 2+2?","4"', "qa"),
        ("instruction,input,output", "Add,2 2,4", "alpaca"),
        ("prompt,completion", "Hello,Hi", "completion"),
        ("text", "Just text", "text"),
    ],
)
def test_csv_columns_pick_the_format(tmp_path, header, row, expected):
    path = tmp_path / "data.csv"
    path.write_text(f"{header}\n{row}\n{row}\n", encoding="utf-8")
    assert load_examples(str(path)).formats == (expected,)


def test_mixed_directory_recursive_with_per_file_counts(tmp_path):
    write_json(tmp_path / "alpaca" / "a.json", SAMPLES["alpaca"] * 2)
    write_jsonl(tmp_path / "chat" / "b.jsonl", SAMPLES["openai"] * 3)
    write_json(tmp_path / "qa" / "deep" / "c.json", SAMPLES["qa"])
    (tmp_path / "notes.txt").write_text("some text\n\nmore text", encoding="utf-8")
    (tmp_path / ".hidden.json").write_text("not data", encoding="utf-8")
    (tmp_path / "picture.png").write_bytes(b"\x89PNG")
    loaded = load_examples(str(tmp_path))
    assert set(loaded.formats) == {"alpaca", "openai", "qa", "text"}
    totals = {summary.name.split("/")[-1]: summary.total for summary in loaded.files}
    assert totals == {"a.json": 2, "b.jsonl": 3, "c.json": 1, "notes.txt": 2}
    assert loaded.task_type == "instruction"


def test_globs_and_comma_lists(tmp_path):
    write_json(tmp_path / "one.json", SAMPLES["alpaca"])
    write_json(tmp_path / "two.json", SAMPLES["qa"])
    write_jsonl(tmp_path / "three.jsonl", SAMPLES["text"])
    assert len(load_examples(str(tmp_path / "*.json")).examples) == 2
    spec = f"{tmp_path / 'one.json'},{tmp_path / 'three.jsonl'}"
    assert load_examples(spec).formats == ("alpaca", "text")


def test_dataset_format_override_and_max_examples(tmp_path):
    records = [{"question": f"q{i}", "answers": {"text": [f"a{i}"]}} for i in range(10)]
    path = write_jsonl(tmp_path / "squad.jsonl", records)
    loaded = load_examples(str(path), dataset_format="qa", max_examples=4)
    assert len(loaded.examples) == 4
    assert loaded.examples[0].messages[1][1].startswith("a")


def test_unknown_format_names_file_record_and_supported_formats(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [SAMPLES["qa"][0], {"foo": 1, "bar": 2}])
    with pytest.raises(DataFormatError) as caught:
        load_examples(str(path))
    message = caught.value.render()
    assert "Unable to detect data format" in message
    assert str(path) in message and "record #1" in message and "'foo'" in message
    for listed in ("Alpaca", "ShareGPT", "OpenAI", "QA", "Completion", "Plain text", "CSV"):
        assert listed in message


def test_bad_json_line_and_missing_paths(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"text": "ok"}\n{"text": oops}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match="line 2"):
        load_examples(str(path))
    with pytest.raises(DataSourceError, match="not a file"):
        load_examples(str(tmp_path / "missing.json"))
    with pytest.raises(DataSourceError, match="matches no files"):
        load_examples(str(tmp_path / "*.nothing"))


def test_conversation_without_assistant_is_rejected(tmp_path):
    path = write_json(tmp_path / "x.json", [{"messages": [{"role": "user", "content": "hi"}]}])
    with pytest.raises(DataFormatError, match="no assistant turn"):
        load_examples(str(path))


def test_hub_dataset_gives_a_clear_error_offline():
    with pytest.raises(HubDatasetError) as caught:
        load_examples("squad:train")
    assert "Hub" in caught.value.render()


def test_chat_rendering_trains_only_assistant_tokens(tiny_llama, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    path = write_json(tmp_path / "chat.json", SAMPLES["openai"] * 2 + SAMPLES["completion"] * 2)
    data = prepare(load_examples(str(path)), tokenizer, max_seq_length=128, validation_split=0.25)
    chat = next(
        i for i in data.train + data.validation if tokenizer.decode(i.input_ids).count("im_start")
    )
    trained = tokenizer.decode(
        [t for t, keep in zip(chat.input_ids, chat.trained, strict=True) if keep]
    )
    assert trained.startswith("Hello!") and "<|im_end|>" in trained
    assert "Be brief" not in trained and "Hi" not in trained.replace("Hello!", "")
    printout = describe(data, tokenizer)
    assert "openai+completion" in printout and "«Hello!<|im_end|>" in printout


def test_plain_text_is_packed_into_blocks(tiny_llama, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    path = tmp_path / "corpus.txt"
    path.write_text(
        "\n\n".join(f"paragraph {i} about the red apple" for i in range(40)), encoding="utf-8"
    )
    data = prepare(load_examples(str(path)), tokenizer, max_seq_length=32, validation_split=0.1)
    blocks = data.train + data.validation
    assert data.packed_blocks == len(blocks) and len(blocks) > 4
    assert all(len(b.input_ids) <= 32 for b in blocks)
    assert sum(len(b.input_ids) == 32 for b in blocks) >= len(blocks) - 1


def test_hub_dataset_slice_is_not_taken_for_a_glob(tmp_path):
    from llm_runtime.training.data.sources import resolve_sources

    local = write_json(tmp_path / "a.json", [{"question": "q", "answer": "a"}])
    sources = resolve_sources(f"{local},org/set:train[:10%]")
    assert [s.path for s in sources] == [local, None]
    assert (sources[1].hub_name, sources[1].hub_split) == ("org/set", "train[:10%]")
