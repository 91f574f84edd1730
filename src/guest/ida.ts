/**
 * A lowest-free ID allocator over [min, max] (Linux's IDA): the guest's ASIDs, its PASID space
 * (on Arm the guest owns PASIDs: the SMMU's SubstreamIDs need no host allocation) and its MSI
 * INTIDs come from instances of it. Deterministic; exhaustion is `undefined`, never an exception.
 */

export class Ida {
  readonly min: number;
  readonly max: number;
  private readonly used = new Set<number>();

  constructor(min: number, max: number) {
    this.min = min;
    this.max = max;
  }

  /** The lowest free ID in [max(min, lo), min(max, hi)], now taken. */
  alloc(lo = this.min, hi = this.max): number | undefined {
    const a = Math.max(lo, this.min);
    const b = Math.min(hi, this.max);
    for (let id = a; id <= b; id++) {
      if (!this.used.has(id)) {
        this.used.add(id);
        return id;
      }
    }
    return undefined;
  }

  free(id: number): boolean {
    return this.used.delete(id);
  }

  has(id: number): boolean {
    return this.used.has(id);
  }

  get inUse(): number {
    return this.used.size;
  }
}
