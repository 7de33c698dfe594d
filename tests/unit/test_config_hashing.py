"""Cluster config files and room ownership."""

from __future__ import annotations

from collections import Counter

import pytest

from chatcluster.common.config import ClusterConfig, Limits
from chatcluster.common.hashing import owner
from chatcluster.shards.rooms import check_limits, max_member_list_frame


def test_single_host_config_round_trips(tmp_path):
    config = ClusterConfig.single_host(shards=3, port=9000, data_dir=str(tmp_path / "d"))
    assert [s.control_port for s in config.shards] == [9002, 9003, 9004]
    assert config.gateways[0].control_port == 9001
    assert config.db_url == f"sqlite:///{tmp_path / 'd' / 'chat.db'}"
    assert all(s.endpoint.startswith("ipc://") for s in config.shards)
    config.save(tmp_path / "c.json")
    assert ClusterConfig.load(tmp_path / "c.json") == config


def test_long_data_dirs_keep_ipc_paths_short(tmp_path):
    deep = tmp_path / ("x" * 120)
    config = ClusterConfig.single_host(shards=1, data_dir=str(deep))
    assert len(config.shards[0].endpoint) < 110


def test_toml_config(tmp_path):
    path = tmp_path / "cluster.toml"
    path.write_text("""
data_dir = "/var/lib/chat"
db_url = "sqlite:////var/lib/chat/chat.db"
registration = "closed"
[[shards]]
id = 0
endpoint = "tcp://10.0.0.2:5600"
control_port = 7800
[[gateways]]
id = 0
host = "0.0.0.0"
port = 7777
control_port = 7801
[limits]
max_members = 500
""")
    config = ClusterConfig.load(path)
    assert config.registration == "closed" and config.limits.max_members == 500
    assert config.shard(0).endpoint == "tcp://10.0.0.2:5600"


@pytest.mark.parametrize("bad", [{"shards": []}, {"registration": "maybe"}, {"surprise": 1}])
def test_config_validation(bad):
    raw = ClusterConfig.single_host(shards=1).to_dict() | bad
    with pytest.raises((ValueError, TypeError)):
        ClusterConfig.from_dict(raw)


def test_owner_is_stable_and_spread():
    shards = [0, 1, 2, 3]
    counts = Counter(owner(room, shards) for room in range(1, 4001))
    assert set(counts) == {0, 1, 2, 3}
    assert min(counts.values()) > 800  # roughly even
    assert owner(12345, shards) == owner(12345, list(shards))


def test_removing_a_shard_moves_only_its_rooms():
    before = {room: [0, 1, 2, 3][owner(room, [0, 1, 2, 3])] for room in range(1, 2001)}
    after = {room: [0, 1, 3][owner(room, [0, 1, 3])] for room in range(1, 2001)}
    moved = [room for room in before if before[room] != after[room]]
    assert all(before[room] == 2 for room in moved)


def test_member_list_of_a_full_room_fits_one_frame():
    assert max_member_list_frame(Limits()) <= 0xFFFF
    check_limits(Limits())
    with pytest.raises(ValueError):
        check_limits(Limits(max_members=5000))


def test_auto_shards_is_one_per_two_cores_but_two_from_two_cores_on():
    from chatcluster.common.config import auto_shards

    assert [auto_shards(cores) for cores in (1, 2, 3, 4, 8, 64)] == [1, 2, 2, 2, 4, 32]


def test_the_shards_option_takes_a_number_or_auto():
    import click
    import pytest

    from chatcluster.common.config import auto_shards
    from chatcluster.common.options import SHARDS

    assert SHARDS.convert("auto", None, None) == auto_shards()
    assert SHARDS.convert("3", None, None) == 3
    for bad in ("0", "257", "many"):
        with pytest.raises(click.BadParameter):
            SHARDS.convert(bad, None, None)
