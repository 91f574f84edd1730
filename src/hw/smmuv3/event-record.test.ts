/** Event records by field name (§7.3): only the fields a kind's layout carries, exact addresses. */

import { describe, expect, it } from 'vitest';
import { C_BAD_SUBSTREAMID, F_PERMISSION, F_STREAM_DISABLED } from '../../arch/smmuv3/events.ts';
import { decodeEvent, encodeEvent, eventFields, inputWords } from './event-record.ts';

const roundTrip = (init: Parameters<typeof encodeEvent>[0]) => decodeEvent(encodeEvent(init));

describe('eventFields', () => {
  it('gives a permission fault its layout, with the 64-bit input address exact', () => {
    const e = roundTrip({
      id: F_PERMISSION,
      streamId: 7,
      substreamId: 3,
      rnw: false,
      s2: true,
      cls: 1, // TT: TTRnW is recorded only for a fault on a table fetch
      ttrnw: true,
      ipa: 0x8000_1000,
      inputHi: 0xffff_ffff,
      inputLo: 0xffff_f000,
    });
    expect(eventFields(e)).toEqual({
      StreamID: 7,
      SSV: true,
      SubstreamID: 3,
      RnW: false,
      InD: false,
      PnU: false,
      S2: true,
      CLASS: 'TT',
      TTRnW: true,
      InputAddr: 0xffff_ffff_ffff_f000n,
      IPA: 0x8000_1000,
    });
  });

  it('leaves out what a kind does not carry, and SubstreamID without one', () => {
    expect(eventFields(roundTrip({ id: F_STREAM_DISABLED, streamId: 9 }))).toEqual({ StreamID: 9 });
    expect(eventFields(roundTrip({ id: C_BAD_SUBSTREAMID, streamId: 1, substreamId: 5 }))).toEqual({
      StreamID: 1,
      SubstreamID: 5,
    });
    expect(inputWords(0x1_0000_2000)).toEqual({ inputHi: 1, inputLo: 0x2000 });
  });
});
