"""What Flower counted: succeeded delivery tasks, and the deliveries their results say they carried."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.flower_stats import FlowerCount, read_flower, summarise


def task(state: str = "SUCCESS", result: object = "{'deliveries': 3, 'succeeded': 2, 'retrying': 1}",
         name: str = "hookline.deliver") -> dict[str, object]:
    return {"name": name, "state": state, "result": result}


class TestSummarise:
    """Flower's /api/tasks answer, added up; anything odd in it counts as nothing."""

    def test_results_are_added_up(self) -> None:
        tasks = {"a": task(), "b": task(result="{'deliveries': 1, 'succeeded': 1}")}
        assert summarise(tasks) == FlowerCount(tasks=2, deliveries=4, succeeded=3)

    def test_only_succeeded_delivery_tasks_count(self) -> None:
        tasks = {"a": task(state="STARTED"), "b": task(state="FAILURE"),
                 "c": task(name="hookline.sweep"), "d": task()}
        assert summarise(tasks) == FlowerCount(tasks=1, deliveries=3, succeeded=2)

    def test_a_result_given_as_a_mapping_counts_too(self) -> None:
        assert summarise({"a": task(result={"deliveries": 5, "succeeded": 5})}).deliveries == 5

    @pytest.mark.parametrize("result", [None, "", "not python", "[1, 2]", "{'deliveries': -4}",
                                        "{'deliveries': True}", "__import__('os')"])
    def test_an_unreadable_result_is_a_task_with_no_deliveries(self, result: object) -> None:
        assert summarise({"a": task(result=result)}) == FlowerCount(tasks=1)

    def test_the_task_rate_is_over_the_given_time(self) -> None:
        assert FlowerCount(tasks=30).tasks_per_second(10.0) == 3.0
        assert FlowerCount(tasks=30).tasks_per_second(0.0) == 0.0


@pytest.fixture
def flower_like() -> Iterator[tuple[int, list[str]]]:
    """A loopback server answering /api/tasks as Flower does; records the paths asked for."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = json.dumps({"t1": task(), "t2": task()}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1]), asked
    server.shutdown()
    server.server_close()


class TestReadFlower:
    """read_flower asks for the delivery tasks only, and is None while Flower does not answer."""

    def test_it_reads_the_delivery_tasks(self, flower_like: tuple[int, list[str]]) -> None:
        port, asked = flower_like
        assert read_flower(port) == FlowerCount(tasks=2, deliveries=6, succeeded=4)
        assert asked == ["/api/tasks?taskname=hookline.deliver"]

    def test_nothing_listening_is_none(self) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        assert read_flower(port, timeout=0.5) is None
