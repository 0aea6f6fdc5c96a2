"""The prompt processor's `drop_words`: a stage can leave words out of the prompt it embeds."""
import pytest
import torch

from ui3d.prompt.prompt_processor import PromptProcessor, without_words
from ui3d.teachers.loader import load_teacher

PATTERNS = ["plain", "striped", "dotted", "checkered"]


@pytest.mark.parametrize("prompt, expected", [
    ("a blue dotted ball", "a blue ball"),
    ("a dotted box", "a box"),
    ("a striped orange bowl", "an orange bowl"),   # the article follows the word after it
    ("an orange cone", "an orange cone"),
    ("A Striped vase", "A vase"),
])
def test_without_words_drops_whole_words_case_insensitively(prompt, expected):
    assert without_words(prompt, PATTERNS) == expected


def test_without_words_keeps_the_prompt_when_nothing_is_dropped():
    assert without_words("a stripedish vase", PATTERNS) == "a stripedish vase"
    assert without_words("a vase", []) == "a vase"


def test_dropping_every_word_is_refused():
    with pytest.raises(ValueError, match="leave nothing"):
        without_words("a striped", PATTERNS)


def test_the_processor_embeds_and_reports_the_prompt_without_the_dropped_words(tmp_path):
    teacher = load_teacher("embedded")
    kept = PromptProcessor(PromptProcessor.Config(prompt="a blue dotted ball", drop_words=PATTERNS,
                                                  cache_dir=str(tmp_path)), teacher)
    plain = PromptProcessor(PromptProcessor.Config(prompt="a blue ball", cache_dir=str(tmp_path)), teacher)
    full = PromptProcessor(PromptProcessor.Config(prompt="a blue dotted ball", cache_dir=str(tmp_path)), teacher)
    elevation, azimuth = torch.tensor([10.0, 20.0]), torch.tensor([0.0, 90.0])
    out = kept(elevation, azimuth)
    assert out.prompts == ["a blue ball, front view", "a blue ball, side view"]
    assert torch.equal(out.cond, plain(elevation, azimuth).cond)
    assert not torch.equal(out.cond, full(elevation, azimuth).cond)


def test_the_template_wraps_the_prompt_after_the_dropped_words(tmp_path):
    teacher = load_teacher("embedded")
    styled = PromptProcessor(PromptProcessor.Config(prompt="a blue dotted ball", drop_words=["blue", *PATTERNS],
                                                    prompt_template="a normal map of {prompt}",
                                                    cache_dir=str(tmp_path)), teacher)
    out = styled(torch.tensor([10.0]), torch.tensor([90.0]))
    assert out.prompts == ["a normal map of a ball, side view"]
    with pytest.raises(ValueError, match="prompt_template"):
        PromptProcessor(PromptProcessor.Config(prompt="a ball", prompt_template="a normal map",
                                               cache_dir=str(tmp_path)), teacher)
