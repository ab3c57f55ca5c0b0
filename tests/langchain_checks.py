"""What `langchain-openai` relies on, checked against a live server of either engine.

`with_structured_output(Schema)` (a json_schema response_format) must parse into the schema,
and `.bind_tools([...], tool_choice=name)` must return a call whose arguments fit the function.
Enums and booleans keep a random-weight model's constrained answers short.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

CITIES = ("Paris", "Rome", "Oslo")


class Weather(BaseModel):
    city: Literal["Paris", "Rome", "Oslo"]
    rain: bool


def get_weather(city: Literal["Paris", "Rome", "Oslo"], rain: bool) -> str:
    """Report the weather."""
    return city


def check_structured_output_and_bound_tools(base_url: str, **chat_options: Any) -> None:
    """``base_url`` ends in /v1; ``chat_options`` go to ChatOpenAI (extra_body, max_tokens…)."""
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        base_url=base_url, api_key="unused", model="m", max_retries=0, seed=3, **chat_options
    )
    weather = llm.with_structured_output(Weather).invoke("weather in paris?")
    assert isinstance(weather, Weather) and weather.city in CITIES

    message = llm.bind_tools([get_weather], tool_choice="get_weather").invoke("weather?")
    (call,) = message.tool_calls
    assert call["name"] == "get_weather"
    assert call["args"]["city"] in CITIES and isinstance(call["args"]["rain"], bool)
