"""The demo's live view: rates from acceptance times, the statuses a webhook answered, its tables."""

from __future__ import annotations

import io

from rich.console import Console

from crewpass.demo_view import (
    Services,
    Throughput,
    WebhookLine,
    answers_text,
    failures_line,
    peak_rate,
    rate_over,
    services_line,
    throughput_line,
    webhooks_table,
)


def rendered(renderable: object) -> str:
    console = Console(width=200, file=io.StringIO())
    console.print(renderable)
    output = console.file
    assert isinstance(output, io.StringIO)
    return output.getvalue()


def line(**changes: object) -> WebhookLine:
    values: dict[str, object] = {
        "label": "Harbor Crewing", "behaviour": "503, then 429, then 200", "enabled": True,
        "deliveries": 4, "delivered": 4, "attempts": 12, "retries": 8, "dead_now": 0, "requeued": 0,
        "answers": {503: 4, 429: 4, 200: 4}}
    values.update(changes)
    return WebhookLine(**values)  # type: ignore[arg-type]


class TestRates:
    """Deliveries per second are counted from the times the receivers accepted them."""

    def test_the_live_rate_counts_only_the_last_window(self) -> None:
        times = [0.5, 7.1, 7.5, 8.0, 9.9, 10.0]
        assert rate_over(times, now=10.0, window=3.0) == 5 / 3

    def test_nothing_accepted_is_no_rate(self) -> None:
        assert rate_over([], now=10.0) == 0.0
        assert peak_rate([]) == 0

    def test_the_peak_is_the_busiest_second_since_the_first_acceptance(self) -> None:
        assert peak_rate([100.0, 100.2, 100.9, 101.1, 102.0, 102.5]) == 3


class TestAnswers:
    """A webhook's answers read most frequent first, a transport error as 'error'."""

    def test_statuses_are_listed_by_count(self) -> None:
        assert answers_text({200: 9, 429: 3, 503: 5}) == "200×9 503×5 429×3"

    def test_an_attempt_without_a_status_is_an_error(self) -> None:
        assert answers_text({None: 2}) == "error×2"


class TestWebhookLines:
    """Dead-lettered counts both the deliveries still dead and those requeued since."""

    def test_dead_lettered_includes_the_requeued(self) -> None:
        assert line(dead_now=2, requeued=5).dead_lettered == 7

    def test_the_table_marks_a_disabled_webhook_and_shows_its_answers(self) -> None:
        text = rendered(webhooks_table([line(label="Old URL", enabled=False, answers={410: 1})]))
        assert "Old URL (disabled)" in text
        assert "410×1" in text

    def test_the_failures_line_adds_up_every_webhook(self) -> None:
        text = failures_line([line(), line(attempts=3, retries=0, dead_now=1, requeued=2)],
                             requeued_arrived=2)
        assert "attempts 15" in text and "retries 8" in text
        assert "dead letters 1" in text and "requeued 2" in text and "2 arrived after the requeue" in text


class TestServicesAndThroughput:
    """The URLs show while the services run; Flower's count shows once Flower answered."""

    def test_both_urls_show(self) -> None:
        text = services_line(Services(flower="http://127.0.0.1:5555",
                                      console="http://127.0.0.1:8000/console"))
        assert "Flower http://127.0.0.1:5555" in text and "console http://127.0.0.1:8000/console" in text

    def test_no_services_says_how_they_were_turned_off(self) -> None:
        assert "--no-flower" in services_line(Services())

    def test_flower_is_left_out_until_it_answered(self) -> None:
        assert "Flower" not in throughput_line(Throughput(now=2.0, average=1.5, delivered=30))

    def test_flower_count_is_shown_next_to_the_rate(self) -> None:
        text = throughput_line(Throughput(now=2.0, average=1.5, delivered=30, flower_tasks=12,
                                          flower_deliveries=31, flower_tasks_per_second=0.6))
        assert "2.0 deliveries/s" in text
        assert "Flower: 12 delivery tasks processed (0.6 tasks/s) carrying 31 deliveries" in text
