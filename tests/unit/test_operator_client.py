"""chatctl's side of the operator API without a cluster: where the key comes from, what is printed."""

from __future__ import annotations

import pytest

from chatcluster.common.config import ClusterConfig
from chatcluster.operator import ApiFailure, api_urls, find_key, said


def config(**fields) -> ClusterConfig:
    return ClusterConfig.single_host(shards=1, gateways=1, port=7000, data_dir="/tmp/unused", **fields)


def test_the_key_comes_from_the_option_then_the_environment_then_the_clusters_file(tmp_path):
    option, named = tmp_path / "option.key", tmp_path / "named.key"
    option.write_text("from-option\n")
    named.write_text("from-config\n")
    env = {"CHATCLUSTER_API_KEY": "from-env"}
    assert find_key(str(option), config(api_key_file=str(named)), env) == "from-option"
    assert find_key(None, config(api_key_file=str(named)), env) == "from-env"
    assert find_key(None, config(api_key_file=str(named)), {}) == "from-config"
    with pytest.raises(ApiFailure, match="no API key: give --api-key-file FILE or set"):
        find_key(None, config(), {})
    with pytest.raises(ApiFailure, match="cannot read the cluster's API key file"):
        find_key(None, config(api_key_file=str(tmp_path / "gone")), {})


def test_the_api_is_asked_on_each_gateways_control_port():
    assert api_urls(config()) == ["http://127.0.0.1:7001/api/"]


def test_results_in_words():
    assert said("publish", {"room_id": 5, "seq": 12}) == ["room 5: system message sent as #12"]
    assert said("rooms", {"rooms": [], "unavailable_shards": [1]}) == [
        "no open rooms", "(shards 1 did not answer: their rooms are not listed)"]
    assert said("rooms", {"rooms": [{"room_id": 5, "name": "lobby", "member_count": 3}],
                          "unavailable_shards": []}) == ["    room  members  name", "       5        3  lobby"]
    assert said("room", {"room_id": 5, "name": "lobby", "seq": 9, "members": [
        {"player_id": 7, "name": "ann", "gateway": "gw1"}]})[0] == "room 5 'lobby': 1 member(s), newest message #9"
    assert said("ban", {"player_id": 7, "name": "eve", "until": "until lifted", "until_us": 0,
                        "disconnected": False}) == ["eve (player 7) is banned until lifted; they were not online"]
    assert said("mute", {"player_id": 7, "room_id": 0, "until": "until X"}) == ["player 7 muted everywhere until X"]
    assert said("unmute", {"player_id": 7, "room_id": 5, "lifted": False}) == [
        "player 7: had no mute in force in room 5"]
    assert said("history", {"room_id": 5, "messages": [], "more": False}) == ["room 5: no messages"]
    assert str(ApiFailure(404, "not_found", "no open room 5")) == "no open room 5 (HTTP 404 not_found)"
