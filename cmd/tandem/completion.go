package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Completion scripts are generated from the commands and their flag sets,
// so a new flag completes without touching this file. A command's flags are
// found by running it with --help on a Main that records the flag sets it
// makes (every command parses its flags before it does anything).

// subcommands of the commands that have them; the first is the default.
var subcommands = map[string][]string{
	"messages":   {"list", "show"},
	"dlq":        {"list", "replay", "purge"},
	"migrate":    {"up", "status"},
	"completion": {"bash", "zsh", "fish"},
}

// flagValues says how to complete a flag's value: a fixed list of words,
// or "<file>" / "<dir>".
var flagValues = map[string][]string{
	"config":  {"<file>"},
	"c":       {"<file>"},
	"file":    {"<file>"},
	"keep":    {"<dir>"},
	"example": exampleNames(),
	"status":  {"accepted", "running", "succeeded", "partially_succeeded", "failed", "compensated"},
	"method":  {"GET", "POST", "PUT", "PATCH", "DELETE"},
}

// cliFlag is one flag of one command.
type cliFlag struct {
	name, usage string
	isBool      bool
}

// cliCommand is a command (or "command sub") and its flags.
type cliCommand struct {
	name, summary string
	subs          []string
	flags         map[string][]cliFlag // by subcommand ("" when none)
}

// cliCommands lists every command with its flags.
func cliCommands() []cliCommand {
	var out []cliCommand
	for _, c := range commands() {
		cc := cliCommand{name: c.name, summary: c.summary, subs: subcommands[c.name], flags: map[string][]cliFlag{}}
		subs := cc.subs
		if len(subs) == 0 || c.name == "completion" {
			subs = []string{""}
		}
		for _, sub := range subs {
			args := []string{"--help"}
			if sub != "" {
				args = []string{sub, "--help"}
			}
			cc.flags[sub] = flagsOf(c, args)
		}
		out = append(out, cc)
	}
	return out
}

// flagsOf runs c with args (ending in --help) and returns the flags of the
// flag set it made.
func flagsOf(c command, args []string) []cliFlag {
	var sets []*flag.FlagSet
	m := &Main{Stdout: io.Discard, Stderr: io.Discard, Getenv: func(string) string { return "" }, onFlags: func(fs *flag.FlagSet) { sets = append(sets, fs) }}
	_ = c.run(m, context.Background(), args)
	var out []cliFlag
	for _, fs := range sets {
		fs.VisitAll(func(f *flag.Flag) {
			b, ok := f.Value.(interface{ IsBoolFlag() bool })
			out = append(out, cliFlag{name: f.Name, usage: f.Usage, isBool: ok && b.IsBoolFlag()})
		})
	}
	return out
}

func (m *Main) completion(_ context.Context, args []string) error {
	fs := m.newFlags("completion", "completion (bash|zsh|fish)\n\n"+
		"  bash: source <(tandem completion bash)     (or save it in /etc/bash_completion.d/tandem)\n"+
		"  zsh:  source <(tandem completion zsh)      (in ~/.zshrc)\n"+
		"  fish: tandem completion fish > ~/.config/fish/completions/tandem.fish")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("completion: say bash, zsh or fish")
	}
	switch pos[0] {
	case "bash":
		_, err = io.WriteString(m.Stdout, bashCompletion(cliCommands()))
	case "zsh":
		_, err = io.WriteString(m.Stdout, "#compdef tandem\n# tandem's zsh completion: the bash one, through bashcompinit.\nautoload -U +X bashcompinit && bashcompinit\n"+bashCompletion(cliCommands()))
	case "fish":
		_, err = io.WriteString(m.Stdout, fishCompletion(cliCommands()))
	default:
		return usagef("completion: unknown shell %q (want bash, zsh or fish)", pos[0])
	}
	return err
}

func flagWords(fl []cliFlag) string {
	var w []string
	for _, f := range fl {
		if len(f.name) == 1 {
			w = append(w, "-"+f.name)
		} else {
			w = append(w, "--"+f.name)
		}
	}
	return strings.Join(w, " ")
}

// bashCompletion is a bash completion function for tandem.
func bashCompletion(cmds []cliCommand) string {
	var b strings.Builder
	b.WriteString(`# bash completion for tandem; load with: source <(tandem completion bash)
_tandem() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    local cmd="${COMP_WORDS[1]}" sub="" subs="" flags=""
    if [[ $COMP_CWORD -eq 1 ]]; then
        COMPREPLY=($(compgen -W "`)
	var names []string
	for _, c := range cmds {
		names = append(names, c.name)
	}
	b.WriteString(strings.Join(names, " ") + ` help" -- "$cur"))
        return
    fi
    case "$prev" in
`)
	keys := make([]string, 0, len(flagValues))
	for k := range flagValues {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := flagValues[k]
		if len(k) == 1 {
			fmt.Fprintf(&b, "    -%s)\n", k)
		} else {
			fmt.Fprintf(&b, "    --%s|-%s)\n", k, k)
		}
		switch v[0] {
		case "<file>":
			b.WriteString("        COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n")
		case "<dir>":
			b.WriteString("        COMPREPLY=($(compgen -d -- \"$cur\")); return ;;\n")
		default:
			fmt.Fprintf(&b, "        COMPREPLY=($(compgen -W %q -- \"$cur\")); return ;;\n", strings.Join(v, " "))
		}
	}
	b.WriteString("    esac\n    [[ $COMP_CWORD -ge 3 ]] && sub=\"${COMP_WORDS[2]}\"\n    case \"$cmd\" in\n")
	for _, c := range cmds {
		fmt.Fprintf(&b, "    %s)\n", c.name)
		if len(c.subs) > 0 && c.name != "completion" {
			fmt.Fprintf(&b, "        subs=%q\n        case \"$sub\" in\n", strings.Join(c.subs, " "))
			for _, s := range c.subs {
				fmt.Fprintf(&b, "        %s) flags=%q ;;\n", s, flagWords(c.flags[s]))
			}
			fmt.Fprintf(&b, "        *) flags=%q ;;\n        esac ;;\n", flagWords(c.flags[c.subs[0]]))
			continue
		}
		if c.name == "completion" {
			fmt.Fprintf(&b, "        subs=%q\n", strings.Join(c.subs, " "))
		}
		fmt.Fprintf(&b, "        flags=%q ;;\n", flagWords(c.flags[""]))
	}
	b.WriteString(`    esac
    if [[ $COMP_CWORD -eq 2 && -n "$subs" && "$cur" != -* ]]; then
        COMPREPLY=($(compgen -W "$subs" -- "$cur"))
        return
    fi
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
}
complete -o default -F _tandem tandem
`)
	return b.String()
}

// fishCompletion is a fish completion script for tandem.
func fishCompletion(cmds []cliCommand) string {
	var b strings.Builder
	b.WriteString("# fish completion for tandem; save as ~/.config/fish/completions/tandem.fish\ncomplete -c tandem -f\n")
	for _, c := range cmds {
		fmt.Fprintf(&b, "complete -c tandem -n __fish_use_subcommand -a %s -d %s\n", c.name, fishQuote(c.summary))
	}
	for _, c := range cmds {
		cond := "__fish_seen_subcommand_from " + c.name
		if len(c.subs) > 0 {
			fmt.Fprintf(&b, "complete -c tandem -n %s -a %s\n",
				fishQuote(cond+"; and not __fish_seen_subcommand_from "+strings.Join(c.subs, " ")), fishQuote(strings.Join(c.subs, " ")))
		}
		for sub, fl := range c.flags {
			fc := cond
			if sub != "" {
				fc += "; and __fish_seen_subcommand_from " + sub
			}
			for _, f := range fl {
				line := "complete -c tandem -n " + fishQuote(fc)
				if len(f.name) == 1 {
					line += " -s " + f.name
				} else {
					line += " -l " + f.name
				}
				if v, ok := flagValues[f.name]; ok && !f.isBool {
					switch v[0] {
					case "<file>":
						line += " -r -F"
					case "<dir>":
						line += " -r -a '(__fish_complete_directories)'"
					default:
						line += " -x -a " + fishQuote(strings.Join(v, " "))
					}
				} else if !f.isBool {
					line += " -x"
				}
				b.WriteString(line + " -d " + fishQuote(firstLine(f.usage)) + "\n")
			}
		}
	}
	return b.String()
}

func fishQuote(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
