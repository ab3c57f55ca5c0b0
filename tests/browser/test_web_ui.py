"""The web UI in a real headless Chromium against real servers on tiny models."""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.browser
TIMEOUT_MS = 60_000


# Recorded in the page from its first script on: the last answer's length after every change
# (with whether a reply was still running), and each fetch the UI made.
RECORDER = """
window.__lengths = [];
window.__fetches = [];
new MutationObserver(() => {
  const answers = document.querySelectorAll('.msg.assistant .answer');
  const send = document.getElementById('send');
  if (answers.length && send) window.__lengths.push([answers[answers.length - 1].textContent.length, send.disabled]);
}).observe(document, { subtree: true, childList: true, characterData: true });
const realFetch = window.fetch;
window.fetch = (url, options = {}) => {
  window.__fetches.push({ url: String(url), body: options.body && typeof options.body === 'string' ? JSON.parse(options.body) : null });
  return realFetch(url, options);
};
"""
NO_WEBSOCKET = "delete window.WebSocket;"
# A WebSocket that can never connect (port 9 is closed): the UI must fall back on its own.
BROKEN_WEBSOCKET = """
const RealWebSocket = window.WebSocket;
window.WebSocket = class extends RealWebSocket {
  constructor(url) { super(url.replace(location.host, '127.0.0.1:9')); }
};
"""


def reply_counts(page, max_tokens: int) -> int:
    """The last reply's token count from its counter, checked against its finish reason: a
    random-weight model may sample its end-of-text token before ``max_tokens``."""
    counts = re.search(
        r"(\d+) tokens · (\w+)", page.locator(".msg.assistant .counts").last.text_content()
    )
    assert counts, "the token counter is shown"
    tokens, reason = int(counts.group(1)), counts.group(2)
    assert 1 <= tokens <= max_tokens
    assert (reason == "length") == (tokens == max_tokens), (tokens, reason)
    return tokens


def test_chat_streams_text(page, ui_servers):
    page.add_init_script(RECORDER)
    page.goto(ui_servers["chat"].url + "/")
    page.wait_for_selector("#panel-chat.active", timeout=TIMEOUT_MS)
    assert not page.is_visible("#reasoning-row")  # not a reasoning model
    page.fill("#max-tokens", "24")
    page.fill("#chat-input", "hello there")
    page.click("#send")
    answer = page.locator(".msg.assistant .answer").last
    page.wait_for_function(
        "document.querySelector('.msg.assistant .answer').textContent.length > 0",
        timeout=TIMEOUT_MS,
    )
    page.wait_for_selector("#send:not([disabled])", timeout=TIMEOUT_MS)
    final = len(answer.text_content())
    assert final
    partial = {n for n, running in page.evaluate("window.__lengths") if running and 0 < n < final}
    assert len(partial) >= 2, "the reply grows in steps while it streams, not all at once"
    tokens = reply_counts(page, 24)
    assert page.locator(".msg.user").last.text_content() == "hello there"
    context = ui_servers["chat"].client().get("/info").json()["capabilities"]["max_context_length"]
    used = re.fullmatch(rf"(\d+)/{context} tokens", page.text_content("#token-counter"))
    assert used and int(used.group(1)) > tokens  # the prompt counts too


def test_chat_falls_back_to_sse(page, ui_servers):
    page.add_init_script(RECORDER)
    page.goto(ui_servers["chat"].url + "/")
    page.wait_for_selector("#panel-chat.active", timeout=TIMEOUT_MS)
    page.select_option("#transport", "sse")
    page.fill("#max-tokens", "8")
    page.fill("#chat-input", "again")
    page.click("#send")
    page.wait_for_selector("#send:not([disabled])", timeout=TIMEOUT_MS)
    reply_counts(page, 8)
    generate = [f for f in page.evaluate("window.__fetches") if f["url"].endswith("/generate")]
    assert [(f["body"]["stream"], f["body"]["max_tokens"]) for f in generate] == [(True, 8)]


def test_chat_without_websocket_streams_over_sse(page, ui_servers):
    page.add_init_script(NO_WEBSOCKET + RECORDER)
    page.goto(ui_servers["chat"].url + "/")
    page.wait_for_selector("#panel-chat.active", timeout=TIMEOUT_MS)
    assert page.input_value("#transport") == "auto"
    page.fill("#max-tokens", "8")
    page.fill("#chat-input", "no sockets here")
    page.click("#send")
    page.wait_for_selector("#send:not([disabled])", timeout=TIMEOUT_MS)
    reply_counts(page, 8)
    generate = [f for f in page.evaluate("window.__fetches") if f["url"].endswith("/generate")]
    assert [(f["body"]["stream"], f["body"]["max_tokens"]) for f in generate] == [(True, 8)]


def test_failed_reply_is_marked_and_not_sent_back(page, ui_servers):
    page.add_init_script(NO_WEBSOCKET + RECORDER)
    page.goto(ui_servers["chat"].url + "/")
    page.wait_for_selector("#panel-chat.active", timeout=TIMEOUT_MS)
    page.click("#clear-chat")
    page.fill("#max-tokens", "0")  # the server refuses max_tokens 0
    page.fill("#chat-input", "first")
    page.click("#send")
    page.wait_for_selector(".msg.assistant.error", timeout=TIMEOUT_MS)
    assert "not sent back" in page.text_content(".msg.assistant.error")
    page.fill("#max-tokens", "4")
    page.fill("#chat-input", "second")
    page.click("#send")
    page.wait_for_selector("#send:not([disabled])", timeout=TIMEOUT_MS)
    sent = [f["body"] for f in page.evaluate("window.__fetches") if f["url"].endswith("/generate")]
    assert sent[-1]["messages"] == [{"role": "user", "content": "second"}]


def test_malformed_import_says_why(page, ui_servers):
    page.goto(ui_servers["chat"].url + "/")
    page.wait_for_selector("#panel-chat.active", timeout=TIMEOUT_MS)
    page.set_input_files("#import-file", files=[_file("chat.json", "application/json", b"{oops")])
    page.wait_for_function(
        "document.querySelector('#chat-status').textContent.includes('Could not import')",
        timeout=TIMEOUT_MS,
    )
    assert "chat.json" in page.text_content("#chat-status")


def test_reasoning_panel(page, ui_servers):
    page.goto(ui_servers["reasoning"].url + "/")
    page.wait_for_selector("#panel-chat.active", timeout=TIMEOUT_MS)
    assert page.is_visible("#reasoning-row") and page.is_checked("#reasoning-toggle")
    page.fill("#max-tokens", "20")
    # Greedy: sampled, a random-weight model sometimes closes its thinking at once.
    page.fill("#temperature", "0")
    page.fill("#chat-input", "think about cats")
    page.click("#send")
    page.wait_for_selector("#send:not([disabled])", timeout=TIMEOUT_MS)
    reply = page.locator(".msg.assistant").last
    assert reply.locator("details.thinking").count() == 1
    reply.locator("details.thinking summary").click()  # collapsed when done; open it
    assert reply.locator(".thinking-text").text_content()
    counts = reply.locator(".counts").text_content()
    assert "thinking" in counts and "answer" in counts


def test_image_generated_into_gallery(page, ui_servers):
    page.goto(ui_servers["diffusion"].url + "/")
    page.wait_for_selector("#panel-images.active", timeout=TIMEOUT_MS)
    assert page.locator("#img-scheduler option").count() > 3
    _generate_image(page, steps=3)
    page.wait_for_selector("#gallery figure img", timeout=TIMEOUT_MS)
    assert page.get_attribute("#gallery img", "src").startswith("data:image/png;base64,")
    assert page.eval_on_selector("#img-progress", "p => p.value === p.max")
    assert page.eval_on_selector("#gallery img", "img => img.naturalWidth") == 32
    assert "seed 5" in page.text_content("#img-status")
    page.click("#gallery-clear")
    assert page.locator("#gallery figure").count() == 0


def test_image_progress_over_sse_when_the_socket_fails(page, ui_servers):
    page.add_init_script(BROKEN_WEBSOCKET)
    page.goto(ui_servers["diffusion"].url + "/")
    page.wait_for_selector("#panel-images.active", timeout=TIMEOUT_MS)
    _generate_image(page, steps=4)
    page.wait_for_selector("#gallery figure img", timeout=TIMEOUT_MS)
    assert "using SSE" in page.text_content("#status")
    assert page.eval_on_selector("#img-progress", "p => p.max") == 4  # the steps came as events
    assert "seed 5" in page.text_content("#img-status")


def test_failed_image_generation_is_reported(page, ui_servers):
    page.add_init_script(RECORDER)
    page.goto(ui_servers["diffusion"].url + "/")
    page.wait_for_selector("#panel-images.active", timeout=TIMEOUT_MS)
    page.select_option("#img-scheduler", "pndm")  # diffusers' PNDM fails on a single step
    _generate_image(page, steps=1)
    page.wait_for_selector("#img-generate:not([disabled])", timeout=TIMEOUT_MS)
    assert "Error: Image generation failed" in page.text_content("#img-status")
    assert page.locator("#gallery figure").count() == 0
    fetched = [f["url"] for f in page.evaluate("window.__fetches")]
    assert not [url for url in fetched if url.endswith("/generate")]  # not run a second time


def _generate_image(page, *, steps: int) -> None:
    page.fill("#img-prompt", "a tiny red fox")
    page.fill("#img-steps", str(steps))
    page.fill("#img-width", "32")
    page.fill("#img-height", "32")
    page.fill("#img-seed", "5")
    page.click("#img-generate")


def test_embedding_search_and_projection(page, ui_servers):
    page.goto(ui_servers["embeddings"].url + "/")
    page.wait_for_selector("#panel-embed.active", timeout=TIMEOUT_MS)
    page.click("#emb-run")
    page.wait_for_function(
        "document.querySelector('#emb-status').textContent.includes('vectors')",
        timeout=TIMEOUT_MS,
    )
    assert "384 dimensions" in page.text_content("#emb-status")
    page.fill("#emb-query", "a small cat resting")
    page.click("#emb-search")
    page.wait_for_selector("#emb-results li", timeout=TIMEOUT_MS)
    top = page.locator("#emb-results li").first.text_content()
    assert "cat" in top or "kitten" in top
    painted = page.eval_on_selector(
        "#emb-plot",
        "c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some(v => v > 0)",
    )
    assert painted


def test_theme_and_settings_persist(page, ui_servers):
    page.goto(ui_servers["chat"].url + "/")
    page.wait_for_selector("#panel-chat.active", timeout=TIMEOUT_MS)
    before = page.get_attribute("html", "data-theme")
    page.click("#theme-toggle")
    page.fill("#temperature", "0.3")
    page.dispatch_event("#temperature", "change")
    page.evaluate(  # fields of the other panels are saved the same way
        """() => {
          const set = (id, change) => { change(document.getElementById(id));
            document.getElementById(id).dispatchEvent(new Event('change', { bubbles: true })); };
          set('img-seed', (el) => { el.value = '42'; });
          set('emb-normalize', (el) => { el.checked = false; });
        }"""
    )
    page.reload()
    page.wait_for_selector("#panel-chat.active", timeout=TIMEOUT_MS)
    assert page.get_attribute("html", "data-theme") != before
    assert page.input_value("#temperature") == "0.3"
    assert page.input_value("#img-seed") == "42"
    assert not page.is_checked("#emb-normalize")


def test_detection_upload_draws_boxes(page, media_ui_servers):
    from tiny_media import make_png

    page.goto(media_ui_servers["detection"].url + "/")
    page.wait_for_selector("#panel-vision.active", timeout=TIMEOUT_MS)
    assert page.is_visible("#vision-threshold-row")
    page.set_input_files("#vision-file", files=[_file("street.png", "image/png", make_png(96, 64))])
    page.wait_for_selector("#vision-run:not([disabled])", timeout=TIMEOUT_MS)
    assert "street.png" in page.text_content("#vision-drop")
    blank = _canvas_pixels(page)
    page.fill("#vision-threshold", "0")
    page.click("#vision-run")
    page.wait_for_selector("#vision-table tr", timeout=TIMEOUT_MS)
    rows = page.locator("#vision-table tr")
    assert rows.count() >= 1
    score = float(rows.first.locator("td").nth(2).text_content())
    assert 0 <= score <= 1
    assert _canvas_pixels(page) != blank  # the boxes are drawn over the image


def test_speech_upload_shows_the_transcript(page, media_ui_servers):
    from tiny_media import make_wav

    page.goto(media_ui_servers["speech"].url + "/")
    page.wait_for_selector("#panel-speech.active", timeout=TIMEOUT_MS)
    page.set_input_files("#speech-file", files=[_file("note.wav", "audio/wav", make_wav(2.0))])
    assert page.is_visible("#speech-audio")
    page.click("#speech-run")
    page.wait_for_function(
        "document.querySelector('#speech-status').textContent.includes('of audio')",
        timeout=TIMEOUT_MS,
    )
    assert page.text_content("#speech-status").startswith("2")
    with media_ui_servers["speech"].client() as client:
        files = {"audio": ("note.wav", make_wav(2.0), "audio/wav")}
        expected = client.post("/generate", files=files).json()["text"]
    assert expected and page.text_content("#speech-text") == expected


def test_multimodal_chat_with_an_image(page, media_ui_servers):
    from tiny_media import make_png

    page.goto(media_ui_servers["multimodal"].url + "/")
    page.wait_for_selector("#panel-chat.active", timeout=TIMEOUT_MS)
    assert page.is_visible("#chat-drop")
    page.set_input_files("#chat-images", files=[_file("cat.png", "image/png", make_png())])
    page.wait_for_selector("#chat-thumbs img", timeout=TIMEOUT_MS)
    page.fill("#max-tokens", "6")
    page.fill("#chat-input", "what is in the picture")
    page.click("#send")
    page.wait_for_selector("#send:not([disabled])", timeout=TIMEOUT_MS)
    counts = page.locator(".msg.assistant .counts").last.text_content()
    tokens = int(re.search(r"(\d+) tokens", counts).group(1))
    assert 1 <= tokens <= 6
    assert page.locator(".msg.user img").count() == 1  # the image went with the message


def test_any_other_task_panel(page, media_ui_servers):
    page.goto(media_ui_servers["fill-mask"].url + "/")
    page.wait_for_selector("#panel-generic.active", timeout=TIMEOUT_MS)
    help_text = page.text_content("#generic-help")
    assert "task: fill-mask" in help_text and "top_k" in help_text  # what the task takes
    page.fill("#generic-body", '{"inputs": "a b [MASK]", "parameters": {"top_k": 2}}')
    page.click("#generic-run")
    page.wait_for_function(
        "document.querySelector('#generic-out').textContent.length > 0", timeout=TIMEOUT_MS
    )
    answer = json.loads(page.text_content("#generic-out"))
    assert answer["task"] == "fill-mask" and len(answer["result"]) == 2


def _file(name: str, mime: str, data: bytes) -> dict:
    return {"name": name, "mimeType": mime, "buffer": data}


def _canvas_pixels(page) -> str:
    return page.eval_on_selector("#vision-canvas", "c => c.toDataURL()")
