package config

import (
	"github.com/goccy/go-yaml/ast"
)

// Merge keys ("<<: *base") are expanded in the AST before anything else
// reads it: each mapping gets the merged entries its own keys do not
// override, as the YAML merge-key spec says, and loses its "<<" entries.
// The YAML library's own merge handling treats an overridden key as a
// duplicate, so it must never see one.

type merger struct {
	c       *collector
	aliases map[*ast.AliasNode]ast.Node
	state   map[*ast.MappingNode]int // 1: in progress, 2: done
}

// expandMerges rewrites every mapping under body in place.
func expandMerges(body ast.Node, aliases map[*ast.AliasNode]ast.Node, c *collector) {
	m := &merger{c: c, aliases: aliases, state: map[*ast.MappingNode]int{}}
	m.node(body, 0)
}

// node visits n's children in document order, so an anchor is expanded
// before any later alias merges it.
func (m *merger) node(n ast.Node, depth int) {
	if depth > maxDepth {
		return // the schema walk reports the depth
	}
	switch x := n.(type) {
	case *ast.AnchorNode:
		m.node(x.Value, depth+1)
	case *ast.TagNode:
		m.node(x.Value, depth+1)
	case *ast.SequenceNode:
		for _, v := range x.Values {
			m.node(v, depth+1)
		}
	case *ast.MappingNode:
		m.mapping(x, depth)
	case *ast.MappingValueNode:
		m.node(x.Value, depth+1)
	}
}

func (m *merger) mapping(x *ast.MappingNode, depth int) {
	if m.state[x] != 0 {
		return
	}
	m.state[x] = 1
	defer func() { m.state[x] = 2 }()

	var merges []*ast.MappingValueNode
	explicit := map[string]bool{}
	kept := x.Values[:0:0]
	for _, mv := range x.Values {
		if mv.Key != nil && mv.Key.IsMergeKey() {
			merges = append(merges, mv)
			continue
		}
		m.node(mv.Value, depth+1)
		if k, ok := plainKeyText(mv.Key); ok {
			explicit[k] = true
		}
		kept = append(kept, mv)
	}
	if len(merges) == 0 {
		return
	}
	// Earlier sources win over later ones, explicit keys over all.
	for _, mv := range merges {
		for _, src := range m.sources(mv, depth) {
			for _, e := range src.Values {
				k, ok := plainKeyText(e.Key)
				if ok && explicit[k] {
					continue
				}
				if ok {
					explicit[k] = true
				}
				kept = append(kept, e)
			}
		}
	}
	x.Values = kept
}

// sources resolves a merge key's value to the mappings it brings in.
func (m *merger) sources(mv *ast.MappingValueNode, depth int) []*ast.MappingNode {
	var items []ast.Node
	switch v := m.resolve(mv.Value).(type) {
	case nil:
		return nil
	case *ast.MappingNode:
		items = []ast.Node{v}
	case *ast.SequenceNode:
		items = v.Values
	default:
		m.c.addAt(nodeStart(mv), "", "merge key (<<) needs a mapping or a list of mappings, got "+nodeKind(v))
		return nil
	}
	var out []*ast.MappingNode
	for _, item := range items {
		r := m.resolve(item)
		if r == nil {
			continue // an unknown alias, reported by Parse
		}
		mm, ok := r.(*ast.MappingNode)
		if !ok {
			m.c.addAt(nodeStart(item), "", "merge key (<<) needs a mapping, got "+nodeKind(r))
			continue
		}
		if m.state[mm] == 1 {
			m.c.addAt(nodeStart(mv), "", "merge key (<<) refers to a mapping that contains it")
			continue
		}
		m.mapping(mm, depth+1)
		out = append(out, mm)
	}
	return out
}

func (m *merger) resolve(n ast.Node) ast.Node {
	return resolveNode(n, m.aliases)
}

// plainKeyText is a mapping key's text when it is a scalar.
func plainKeyText(k ast.MapKeyNode) (string, bool) {
	var n ast.Node = k
	if mk, ok := k.(*ast.MappingKeyNode); ok {
		n = mk.Value
	}
	switch x := n.(type) {
	case *ast.StringNode:
		return x.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.NullNode:
		return x.GetToken().Value, true
	}
	return "", false
}
