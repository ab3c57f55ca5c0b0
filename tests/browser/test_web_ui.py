"""The web UI in a real headless Chromium against real servers on tiny models."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser
TIMEOUT_MS = 60_000


def test_chat_streams_text(page, ui_servers):
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
    assert answer.text_content()
    counts = re.search(r"(\d+) tokens · (\w+)", page.locator(".msg.assistant .counts").last.text_content())
    assert counts, "the token counter is shown"
    tokens, reason = int(counts.group(1)), counts.group(2)
    assert 1 <= tokens <= 24 and (reason != "length" or tokens == 24)  # a random model may stop early
    assert page.locator(".msg.user").last.text_content() == "hello there"


def test_chat_falls_back_to_sse(page, ui_servers):
    page.goto(ui_servers["chat"].url + "/")
    page.wait_for_selector("#panel-chat.active", timeout=TIMEOUT_MS)
    page.select_option("#transport", "sse")
    page.fill("#max-tokens", "8")
    page.fill("#chat-input", "again")
    page.click("#send")
    page.wait_for_selector("#send:not([disabled])", timeout=TIMEOUT_MS)
    assert "8 tokens" in page.locator(".msg.assistant .counts").last.text_content()


def test_reasoning_panel(page, ui_servers):
    page.goto(ui_servers["reasoning"].url + "/")
    page.wait_for_selector("#panel-chat.active", timeout=TIMEOUT_MS)
    assert page.is_visible("#reasoning-row") and page.is_checked("#reasoning-toggle")
    page.fill("#max-tokens", "20")
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
    page.fill("#img-prompt", "a tiny red fox")
    page.fill("#img-steps", "3")
    page.fill("#img-width", "32")
    page.fill("#img-height", "32")
    page.fill("#img-seed", "5")
    page.click("#img-generate")
    page.wait_for_selector("#gallery figure img", timeout=TIMEOUT_MS)
    assert page.get_attribute("#gallery img", "src").startswith("data:image/png;base64,")
    assert page.eval_on_selector("#img-progress", "p => p.value === p.max")
    assert page.eval_on_selector("#gallery img", "img => img.naturalWidth") == 32
    assert "seed 5" in page.text_content("#img-status")


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
    page.reload()
    page.wait_for_selector("#panel-chat.active", timeout=TIMEOUT_MS)
    assert page.get_attribute("html", "data-theme") != before
    assert page.input_value("#temperature") == "0.3"


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
    assert not page.text_content("#speech-status").startswith("Error")


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


def _file(name: str, mime: str, data: bytes) -> dict:
    return {"name": name, "mimeType": mime, "buffer": data}


def _canvas_pixels(page) -> str:
    return page.eval_on_selector("#vision-canvas", "c => c.toDataURL()")
