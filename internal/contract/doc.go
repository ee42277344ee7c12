// Package contract checks calls of a target against the target's own
// OpenAPI document (targets.*.contract).
//
// An Operation is one operation of an OpenAPI 3.0 or 3.1 document, found
// by its operationId. It is used three times:
//
//   - at load, CheckTemplate walks a step's body template and reports what
//     is certain to break the request schema: a literal of the wrong type,
//     a literal outside an enum, a required property missing from an
//     object template, an unknown property where additionalProperties is
//     false. A value produced by an expression is not known until run
//     time and is not judged;
//   - before each send, CheckRequest validates the rendered body; a body
//     that breaks the schema is never sent (the engine dead-letters the
//     delivery as a permanent failure with the schema's message);
//   - after each answer, CheckResponse checks that the status is declared
//     and that a JSON body matches the declared schema. A broken answer is
//     flagged, never retried: the target did answer.
//
// Schemas that combine others (oneOf, anyOf, not) are checked at run time
// only; at load CheckTemplate walks plain schemas and allOf members.
//
// The package imports nothing of tandem: the engine hands it bytes.
package contract
