"""One rule type for restore, retrain and migrate: scope maps, regex renames, keep/drop on the
checkpoint's names, and clear refusals of the forms they replaced."""
import pytest

import graphsurgeon as gs
from graphsurgeon._src.cli import main, rule_flags
from graphsurgeon._src.rules import Rules, is_optimizer_state, plan_names
from graphsurgeon._src.surgery.plan import checkpoint_names

F = "float32"


def test_one_public_rule_type():
    from graphsurgeon._src.migrate import Rules as MigrateRules

    assert gs.Rules is Rules is MigrateRules


def test_scope_map_maps_checkpoint_scopes_to_graph_scopes():
    rules = Rules(map_scope=[("old/", "enc/"), ("x/", "")])
    assert rules.new_name("old/dense/kernel") == "enc/dense/kernel"
    assert rules.new_name("x/w") == "w"
    assert rules.new_name("older/w") == "older/w"  # a scope, not a prefix of a name
    plan = gs.make_plan({"enc/w": ((2,), F), "w": ((3,), F)}, {"old/w": ((2,), F), "x/w": ((3,), F)}, rules=rules)
    assert plan.restore_map() == {"enc/w": "old/w", "w": "x/w"}


def test_regex_rename_is_re_sub_on_the_whole_name():
    rules = Rules(rename=[(r"^hidden(\d)/", r"layer\1/")])
    assert rules.new_name("hidden2/weights") == "layer2/weights"
    assert rules.new_name("a/hidden2/weights") == "a/hidden2/weights"
    assert checkpoint_names(["layer1/w", "b"], {"hidden1/w": 0, "b": 0}, rules) == {"layer1/w": "hidden1/w", "b": "b"}


def test_pairs_from_flag_strings_and_lists():
    rules = Rules(rename=["^a/=b/"], map_scope=[["c/", "d/"]])
    assert rules.rename == [("^a/", "b/")] and rules.map_scope == [("c/", "d/")]
    with pytest.raises(gs.ConfigError, match="expected a pair"):
        Rules(map_scope=["no-equals-sign"])


def test_keep_and_drop_match_the_checkpoints_names_not_the_graphs():
    ckpt = {"hidden1/w": ((2,), F), "hidden2/w": ((2,), F), "output/w": ((5,), F)}
    graph = {"enc/h1/w": ((2,), F), "hidden2/w": ((2,), F), "output/w": ((5,), F)}
    rules = Rules(map_scope=[("hidden1/", "enc/h1/")], drop=["hidden1", "output"])
    st = {v.name: v.status for v in gs.make_plan(graph, ckpt, rules=rules).variables}
    assert st == {"enc/h1/w": "reinitialized", "hidden2/w": "restored", "output/w": "reinitialized"}
    st = {v.name: v.status for v in gs.make_plan(graph, ckpt, rules=Rules(keep=["hidden2"])).variables}
    assert st == {"enc/h1/w": "missing", "hidden2/w": "restored", "output/w": "reinitialized",
                  "hidden1/w": "dropped"}
    with pytest.raises(gs.PatternError, match="drop: .*enc"):  # a graph name is not a checkpoint name
        gs.make_plan(graph, ckpt, rules=Rules(drop=["enc"]))
    assert sorted(plan_names(ckpt, Rules(keep=["hidden2", "output"], drop=["output"]))) == ["hidden2/w"]


def test_presets_and_optimizer_state_in_restore():
    ckpt = {"w": ((2,), F), "w/Adam": ((2,), F), "global_step": ((), "int64")}
    graph = dict(ckpt)
    st = {v.name: v.status for v in gs.make_plan(graph, ckpt, rules=Rules(presets=["optimizer-slots"])).variables}
    assert st == {"w": "restored", "w/Adam": "reinitialized", "global_step": "reinitialized"}
    assert is_optimizer_state("w/Adam") and not is_optimizer_state("w")


def test_rules_that_match_nothing_or_collide_are_refused():
    ckpt = {"a/w": ((1,), F), "b/w": ((1,), F)}
    with pytest.raises(gs.PlanError, match=r"map_scope=\('z/', 'y/'\) matches no tensor"):
        gs.make_plan({"y/w": ((1,), F)}, ckpt, rules=Rules(map_scope=[("z/", "y/")]))
    with pytest.raises(gs.PlanError, match="'a/w' and 'b/w' would both restore 'c/w'"):
        gs.make_plan({"c/w": ((1,), F)}, ckpt, rules=Rules(rename=[("^[ab]/", "c/")]))
    with pytest.raises(gs.ConfigError, match="cast is a migration setting"):
        gs.make_plan({}, ckpt, rules=Rules(cast=[("a", "float16")]))


def test_old_forms_say_what_replaced_them(seed004, tmp_path):
    prefix = seed004[0]
    with pytest.raises(gs.ConfigError, match=r"restore\(exclude=...\): replaced by rules=Rules\(drop=\[...\]\)"):
        gs.restore(prefix, exclude=["output"], values=False)
    with pytest.raises(gs.ConfigError, match=r"restore\(include=...\): replaced by rules=Rules\(keep=\[...\]\)"):
        gs.restore(prefix, include=["hidden1"], values=False)
    with pytest.raises(gs.ConfigError, match=r"restore\(rename=...\): replaced by rules=Rules\(map_scope="):
        gs.restore(prefix, rename={"hidden1/": "enc/"}, values=False)
    with pytest.raises(TypeError, match="unexpected keyword argument 'nonsense'"):
        gs.restore(prefix, nonsense=1, values=False)
    with pytest.raises(gs.ConfigError, match=r"old form: say map_scope \['a/=b/'\] and rename \['\^c/w\$=d/w'\]"):
        Rules(rename={"a/": "b/", "c/w": "d/w"})
    for text, needle in [('exclude = ["output"]', "key 'exclude' was replaced by 'drop'"),
                         ('include = ["hidden1"]', "key 'include' was replaced by 'keep'"),
                         ('[rename]\n"hidden1/" = "enc/"', r"old form: say map_scope \['hidden1/=enc/'\]")]:
        plan = tmp_path / "plan.toml"
        plan.write_text(f'model = "{prefix}"\n{text}\n')
        with pytest.raises(gs.ConfigError, match=needle):
            gs.RetrainConfig.from_toml(str(plan))
    with pytest.raises(gs.ConfigError, match="old form"):
        gs.plan(gs.RetrainConfig(model=prefix, rename={"hidden1/": "enc/hidden1/"}))


def test_an_old_plan_file_key_is_named_in_library_words_and_the_cli_adds_the_flag(seed004, tmp_path, capfd):
    plan = tmp_path / "plan.toml"
    plan.write_text(f'model = "{seed004[0]}"\nexclude = ["output"]\n')
    with pytest.raises(gs.ConfigError) as e:
        gs.RetrainConfig.from_toml(str(plan))
    assert str(e.value) == f"plan file {plan}: key 'exclude' was replaced by 'drop' (patterns on the checkpoint's names)"
    assert main(["plan", "--plan", str(plan)]) == 2
    assert capfd.readouterr().err == (f"graphsurgeon plan: error: plan file {plan}: key 'exclude' was replaced by "
                                      "'drop' (patterns on the checkpoint's names; --drop on the command line)\n")


@pytest.mark.parametrize("flag,needle", [("--exclude", "--exclude was replaced by --drop PAT"),
                                         ("--include", "--include was replaced by --keep PAT")])
def test_old_flags_say_what_replaced_them(seed004, capfd, flag, needle):
    assert main(["plan", "--model", seed004[0], flag, "output"]) == 2
    err = capfd.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def test_plan_flags_take_migrates_rules(seed004, capfd):
    prefix = seed004[0]
    assert main(["plan", "--model", prefix, "--drop", "output", "--json"]) == 0
    import json

    st = {v["name"]: v["status"] for v in json.loads(capfd.readouterr().out)["variables"]}
    assert st["output/weights"] == "reinitialized" and st["hidden1/weights"] == "restored"
    assert main(["plan", "--model", prefix, "--keep", "hidden1", "hidden2", "--json"]) == 0
    st = {v["name"]: v["status"] for v in json.loads(capfd.readouterr().out)["variables"]}
    assert st["hidden2/biases"] == "restored" and st["hidden3/weights"] == "reinitialized"
    assert main(["plan", "--model", prefix, "--map-scope", "nothing/=x/"]) == 2
    assert "--map-scope 'nothing/=x/' matches no tensor" in capfd.readouterr().err
    assert main(["plan", "--model", prefix, "--drop", "nope"]) == 2
    assert "--drop: pattern" in capfd.readouterr().err


def test_rule_messages_in_flag_words():
    assert rule_flags("rename=('^a/', 'b/') matches no tensor") == "--rename '^a/=b/' matches no tensor"
    assert rule_flags("keep: pattern 'x' matches no tensor") == "--keep: pattern 'x' matches no tensor"


def test_a_rename_with_a_bad_replacement_is_refused_when_made(seed004, tmp_path, capfd):
    # a group the regex lacks was found only while renaming: 'unexpected error: invalid group reference'
    with pytest.raises(gs.ConfigError, match=r"^rename=\('a_\(\\\\d\)', 'v\\\\2'\): invalid replacement \(invalid "
                                             r"group reference 2 at position 2; the regular expression has 1 group"):
        Rules(rename=[(r"a_(\d)", r"v\2")])
    with pytest.raises(gs.ConfigError, match=r"invalid replacement \(unknown group name 'm'"):
        Rules(rename=[(r"a_(?P<n>\d)", r"v\g<m>")])
    assert Rules(rename=[(r"a_(\d)", r"v\1")]).new_name("a_3") == "v3"
    # the command line says the rule as it was typed, backslashes and all
    assert main(["migrate", seed004[0], str(tmp_path / "out"), "--rename", r"a_(\d)=v\2"]) == 2
    assert capfd.readouterr().err.strip() == (
        r"graphsurgeon migrate: error: --rename 'a_(\d)=v\2': invalid replacement (invalid group reference 2 at "
        "position 2; the regular expression has 1 group)")
    assert rule_flags(r"rename=('^w_(\\d+$', 'x'): invalid regular expression") == \
        r"--rename '^w_(\d+$=x': invalid regular expression"
