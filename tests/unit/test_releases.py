"""The 6.x release list and version strings: what "one version behind" means, and which targets exist."""

from __future__ import annotations

import pytest

from xsoar_mt.errors import ExitCode, InvalidInput, PlanRefused, UsageError
from xsoar_mt.releases import BUILTIN_RELEASES, ReleaseLine, Version, parse_target


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("6.11", Version(6, 11, 0)),
        ("6.11.0", Version(6, 11, 0)),
        ("6.10.0 (B187344)", Version(6, 10, 0, "187344")),
        ("demistoserver-6.12-493375.sh", Version(6, 12, 0, "493375")),
        ("/var/tmp/demistoserver-6.12-493375.sh", Version(6, 12, 0, "493375")),
        ("6.12.1", Version(6, 12, 1)),
    ],
)
def test_version_strings_the_vendor_prints_all_parse(text: str, expected: Version) -> None:
    assert Version.parse(text) == expected


def test_a_version_names_its_release_as_major_dot_minor() -> None:
    assert Version.parse("6.10.0 (B187344)").release == "6.10"


def test_a_version_with_a_build_prints_as_the_vendor_writes_it() -> None:
    assert str(Version.parse("demistoserver-6.12-493375.sh")) == "6.12.0 (B493375)"


@pytest.mark.parametrize("text", ["", "6", "six", "6.x", "6.11.0 (Bx)", "6.11.0.", "release 6.11"])
def test_strings_that_are_not_versions_are_refused_naming_the_string(text: str) -> None:
    with pytest.raises(InvalidInput, match="is not a version"):
        Version.parse(text)


def test_versions_order_by_build_number_not_by_its_text() -> None:
    assert Version.parse("6.10.0 (B99)") < Version.parse("6.10.0 (B100)")


def test_a_version_without_a_build_orders_before_the_same_version_with_one() -> None:
    with_build, without = Version.parse("6.10.0 (B1)"), Version.parse("6.10.0")
    assert min(with_build, without) == without
    assert sorted([with_build, without]) == [without, with_build]


def test_release_distance_counts_steps_in_the_list_not_minor_numbers() -> None:
    line = ReleaseLine()
    assert line.distance("6.2", "6.5") == 1
    assert line.distance("6.6", "6.8") == 1
    assert line.distance("6.10", "6.12") == 2
    assert line.distance("6.12", "6.10") == -2


def test_the_release_after_6_2_is_6_5() -> None:
    assert ReleaseLine().next("6.2") == "6.5"


def test_releases_between_two_releases_exclude_the_first_and_include_the_last() -> None:
    assert ReleaseLine().between("6.9", "6.12") == ("6.10", "6.11", "6.12")


def test_an_unknown_release_is_refused_with_the_known_range() -> None:
    with pytest.raises(InvalidInput, match=r"6\.3 is not a known release \(6\.0 to 6\.14\)"):
        ReleaseLine().index("6.3")


def test_there_is_no_release_after_the_last_known_one() -> None:
    with pytest.raises(InvalidInput, match=r"no release after 6\.14"):
        ReleaseLine().next("6.14")


def test_an_extended_list_appends_newer_releases_after_the_built_in_ones() -> None:
    line = ReleaseLine.extended(["6.15", "6.16"])
    assert line.releases == (*BUILTIN_RELEASES, "6.15", "6.16")
    assert line.distance("6.14", "6.16") == 2


def test_an_extension_may_repeat_a_built_in_release() -> None:
    assert ReleaseLine.extended(["6.14", "6.15"]).releases[-2:] == ("6.14", "6.15")


def test_an_extension_out_of_order_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"not newer than 6\.16"):
        ReleaseLine.extended(["6.16", "6.15"])


def test_an_extension_that_is_not_major_dot_minor_is_refused() -> None:
    with pytest.raises(InvalidInput, match="is not a release"):
        ReleaseLine.extended(["six-fifteen"])


def test_target_is_reduced_to_its_release() -> None:
    assert parse_target("6.12.1", ReleaseLine()) == "6.12"
    assert parse_target("6.12", ReleaseLine()) == "6.12"


def test_an_8_x_target_is_refused_as_a_migration_not_an_upgrade() -> None:
    with pytest.raises(PlanRefused, match="migration to a different platform") as caught:
        parse_target("8.4", ReleaseLine())
    assert caught.value.exit_code is ExitCode.PLAN_REFUSED


def test_an_unknown_target_release_is_a_usage_error_pointing_at_the_release_list() -> None:
    with pytest.raises(UsageError, match=r"6\.15 is not a known release") as caught:
        parse_target("6.15", ReleaseLine())
    assert caught.value.exit_code is ExitCode.USAGE
    assert "releases:" in (caught.value.hint or "")


def test_an_unparsable_target_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--to: 'latest' is not a version"):
        parse_target("latest", ReleaseLine())


def test_a_target_known_only_from_the_extended_list_is_accepted() -> None:
    assert parse_target("6.15", ReleaseLine.extended(["6.15"])) == "6.15"


def test_no_build_sorts_before_any_build_even_build_0() -> None:
    assert Version.parse("6.12.0") < Version.parse("6.12.0 (B0)") < Version.parse("6.12.0 (B20)")
    assert Version.parse("6.12.0 (B20)") < Version.parse("6.12.0 (B100)")  # as numbers, not text
