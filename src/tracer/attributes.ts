/**
 * Attribute types, shared by the adapter contract (adapter.ts) and the metric cells
 * (histograms.ts) without an import loop between the two.
 */

/** Attribute values are primitives only; `undefined` values are skipped by adapters. */
export type AttributeValue = string | number | boolean;
export type Attributes = Record<string, AttributeValue | undefined>;
