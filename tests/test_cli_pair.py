"""`hfdinterp pair` through the CLI: outputs, formats, and one clear line for each bad input."""

import numpy as np
import pytest
from typer.testing import CliRunner

from hfdinterp.cli import app
from hfdinterp.io.images import read_image, write_image
from tests.conftest import moving_square

runner = CliRunner()


@pytest.fixture()
def images(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    write_image(a, moving_square(30, 44, 0))
    write_image(b, moving_square(30, 44, 4))
    return a, b


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def test_middle_frame_written_beside_the_first(images, tiny_weights):
    a, b = images
    result = run("pair", a, b, "--weights", tiny_weights)
    assert result.exit_code == 0, result.output
    out = a.with_name("a-b-t0.500.png")
    assert out.is_file() and read_image(out).size == (44, 30)
    again = run("pair", a, b, "--weights", tiny_weights)
    assert again.exit_code == 1 and "--overwrite" in again.output
    assert run("pair", a, b, "--weights", tiny_weights, "--overwrite").exit_code == 0


def test_num_time_flow_and_output(images, tiny_weights, tmp_path):
    a, b = images
    result = run("pair", a, b, "-w", tiny_weights, "--num", "3", "-o", tmp_path / "mid.png", "--save-flow")
    assert result.exit_code == 0, result.output
    for k in (1, 2, 3):
        assert (tmp_path / f"mid_{k:02d}.png").is_file()
        assert read_image(tmp_path / f"mid_{k:02d}-flow.png").size == (88, 30)  # both flows side by side
    result = run("pair", a, b, "-w", tiny_weights, "--time", "0.25", "-o", tmp_path / "q.jpg", "--ensemble")
    assert result.exit_code == 0 and (tmp_path / "q.jpg").is_file()
    assert not list(tmp_path.glob(".*.part"))


def test_16_bit_grey_and_rgba(tmp_path, tiny_weights):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    rgba = np.concatenate((moving_square(20, 24), np.full((20, 24, 1), 0.5, np.float32)), 2)
    write_image(a, rgba, bit_depth=16)
    write_image(b, rgba, bit_depth=16)
    assert run("pair", a, b, "-w", tiny_weights, "-o", tmp_path / "m.png").exit_code == 0
    out = read_image(tmp_path / "m.png")
    assert out.bit_depth == 16 and out.has_alpha
    assert np.allclose(out.pixels[..., 3], 0.5, atol=0.01)  # alpha moved with the frame, not invented
    result = run("pair", a, b, "-w", tiny_weights, "-o", tmp_path / "n.png", "--drop-alpha")
    assert result.exit_code == 0 and "alpha channel is dropped" in result.output
    assert not read_image(tmp_path / "n.png").has_alpha


def test_bad_inputs_give_one_line_and_exit_1(images, tiny_weights, tmp_path):
    a, b = images
    small = tmp_path / "small.png"
    write_image(small, moving_square(10, 10))
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG but not really")
    cases = {
        "no such file": ("pair", tmp_path / "absent.png", b),
        "is a directory": ("pair", tmp_path, b),
        "differ in size": ("pair", a, small),
        "cannot read it as an image": ("pair", junk, b),
        "would overwrite an input": ("pair", a, b, "-o", a),
        "strictly between 0 and 1": ("pair", a, b, "--time", "1.5"),
        "output folder does not exist": ("pair", a, b, "-o", tmp_path / "nowhere" / "m.png"),
        "unknown image type": ("pair", a, b, "-o", tmp_path / "m.bmp"),
        "weights file not found": ("pair", a, b, "-w", tmp_path / "none.safetensors"),
        "at least 3": ("pair", a, b, "-w", tiny_weights, "--steps", "2"),
    }
    for message, args in cases.items():
        result = run(*args)
        assert result.exit_code == 1, (message, result.output)
        assert message in result.output, (message, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert not a.with_name("a-b-t0.500.png").exists()


def test_the_command_line_refines_as_the_library_does_by_default():
    import inspect

    from hfdinterp import cli
    from hfdinterp.inference.refinement import FlowRefinement

    for command in (cli.pair, cli.video, cli.evaluate):
        default = inspect.signature(command).parameters["refine_steps"].default
        assert default == FlowRefinement.steps


def test_a_negative_refinement_is_one_clear_line(images, tiny_weights):
    a, b = images
    result = run("pair", a, b, "-w", tiny_weights, "--refine-steps", "-1")
    assert result.exit_code == 1 and "--refine-steps must be 0 or more" in result.output
    assert not a.with_name("a-b-t0.500.png").exists()
