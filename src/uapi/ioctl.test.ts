/**
 * Tests of the ioctl request encoding (asm-generic/ioctl.h): the field layout, known request
 * numbers of real headers as literal facts, the decoders, and describeIoctl.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  _IO,
  _IOC,
  _IOC_DIR,
  _IOC_NR,
  _IOC_SIZE,
  _IOC_TYPE,
  _IOR,
  _IOW,
  _IOWR,
  describeIoctl,
  IOC_DIRBITS,
  IOC_DIRSHIFT,
  IOC_NONE,
  IOC_NRBITS,
  IOC_NRSHIFT,
  IOC_READ,
  IOC_SIZEBITS,
  IOC_SIZESHIFT,
  IOC_TYPEBITS,
  IOC_TYPESHIFT,
  IOC_WRITE,
} from './ioctl.ts';

describe('field layout', () => {
  it('is nr [7:0], type [15:8], size [29:16], dir [31:30] with none 0, write 1, read 2', () => {
    expect([IOC_NRBITS, IOC_TYPEBITS, IOC_SIZEBITS, IOC_DIRBITS]).toEqual([8, 8, 14, 2]);
    expect([IOC_NRSHIFT, IOC_TYPESHIFT, IOC_SIZESHIFT, IOC_DIRSHIFT]).toEqual([0, 8, 16, 30]);
    expect([IOC_NONE, IOC_WRITE, IOC_READ]).toEqual([0, 1, 2]);
  });
});

describe('known request numbers', () => {
  it('_IO is (type << 8) | nr', () => {
    expect(_IO(0xae, 0x97)).toBe(0xae97); // KVM_S390_INITIAL_RESET
    expect(_IO(0xae, 0x00)).toBe(0xae00); // KVM_GET_API_VERSION
    expect(_IO(0xae, 0x80)).toBe(0xae80); // KVM_RUN
    expect(_IO(0x3b, 100 + 18)).toBe(0x3b76); // VFIO_IOMMU_SET_PASID_TABLE
    expect(_IO(0x3b, 100)).toBe(0x3b64); // VFIO_GET_API_VERSION
  });

  it('_IOW puts the size in [29:16] and 01 in [31:30]', () => {
    expect(_IOW(0xae, 0x46, 32)).toBe(0x4020ae46); // KVM_SET_USER_MEMORY_REGION
    expect(_IOW(0xae, 0x76, 32)).toBe(0x4020ae76); // KVM_IRQFD
    expect(_IOW(0xae, 0x79, 64)).toBe(0x4040ae79); // KVM_IOEVENTFD
    expect(_IOW(0xae, 0xa3, 104)).toBe(0x4068aea3); // KVM_ENABLE_CAP
    expect(_IOW(0xae, 0xac, 16)).toBe(0x4010aeac); // KVM_SET_ONE_REG
  });

  it('_IOR has 10 in [31:30] and _IOWR 11', () => {
    // KVM_GET_REGS on x86-64: _IOR(KVMIO, 0x81, struct kvm_regs), 144 bytes.
    expect(_IOR(0xae, 0x81, 144)).toBe(0x8090ae81);
    // KVM_GET_MSR_INDEX_LIST: _IOWR(KVMIO, 0x02, struct kvm_msr_list), 4 bytes.
    expect(_IOWR(0xae, 0x02, 4)).toBe(0xc004ae02);
    // TCGETS2 on x86-64 / arm64: _IOR('T', 0x2A, struct termios2), 44 bytes.
    expect(_IOR(0x54, 0x2a, 44)).toBe(0x802c542a);
    // The largest size: all 14 bits.
    expect(_IOWR(0xff, 0xff, 0x3fff)).toBe(0xffffffff);
  });

  it('results are unsigned 32-bit numbers', () => {
    for (const req of [_IOR(1, 2, 3), _IOWR(0xae, 0x02, 4), _IOWR(0xff, 0xff, 0x3fff)]) {
      expect(req).toBeGreaterThan(0);
      expect(req >>> 0).toBe(req);
    }
  });
});

describe('decoders', () => {
  it('split a known request into its fields', () => {
    const req = 0x4020ae46;
    expect(_IOC_DIR(req)).toBe(IOC_WRITE);
    expect(_IOC_TYPE(req)).toBe(0xae);
    expect(_IOC_NR(req)).toBe(0x46);
    expect(_IOC_SIZE(req)).toBe(32);
    expect(_IOC_DIR(0xc004ae02)).toBe(IOC_READ | IOC_WRITE);
    expect(_IOC_DIR(0x3b76)).toBe(IOC_NONE);
    expect(_IOC_SIZE(0x3b76)).toBe(0);
  });

  it('invert _IOC for every in-range component (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 3 }),
        fc.integer({ min: 0, max: 0xff }),
        fc.integer({ min: 0, max: 0xff }),
        fc.integer({ min: 0, max: 0x3fff }),
        (dir, type, nr, size) => {
          const req = _IOC(dir, type, nr, size);
          expect([_IOC_DIR(req), _IOC_TYPE(req), _IOC_NR(req), _IOC_SIZE(req)]).toEqual([
            dir,
            type,
            nr,
            size,
          ]);
          expect(req).toBe(dir * 2 ** 30 + size * 2 ** 16 + type * 2 ** 8 + nr);
        },
      ),
    );
  });
});

describe('_IOC range checks', () => {
  it('throws when a component does not fit its field (programmer error)', () => {
    expect(() => _IOW(0xae, 0x46, 0x4000)).toThrow(/size/);
    expect(() => _IOW(0xae, 0x46, 0xffff)).toThrow(/size/);
    expect(() => _IOW(0xae, 0x46, -1)).toThrow(/size/);
    expect(() => _IOW(0xae, 0x46, 1.5)).toThrow(/size/);
    expect(() => _IO(0x100, 0)).toThrow(/type/);
    expect(() => _IO(0xae, 0x100)).toThrow(/number/);
    expect(() => _IO(-1, 0)).toThrow(/type/);
    expect(() => _IOC(4, 0xae, 0, 0)).toThrow(/direction/);
  });
});

describe('describeIoctl', () => {
  it('prints the macro form, with a printable type as a character', () => {
    expect(describeIoctl(0x3b76)).toBe("_IO(';', 0x76)");
    expect(describeIoctl(0xae97)).toBe('_IO(0xae, 0x97)');
    expect(describeIoctl(0x4020ae46)).toBe('_IOW(0xae, 0x46, 32)');
    expect(describeIoctl(0x802c542a)).toBe("_IOR('T', 0x2a, 44)");
    expect(describeIoctl(0xc004ae02)).toBe('_IOWR(0xae, 0x2, 4)');
    expect(describeIoctl(0x0000)).toBe('_IO(0x0, 0x0)');
  });
});
