package record

// G.711 decoding tables (ITU-T G.711), built once.
var ulaw, alaw [256]int16

func init() {
	for i := range 256 {
		ulaw[i] = decodeULaw(byte(i))
		alaw[i] = decodeALaw(byte(i))
	}
}

func decodeULaw(u byte) int16 {
	u = ^u
	t := (int32(u&0x0f) << 3) + 0x84
	t <<= (u & 0x70) >> 4
	if u&0x80 != 0 {
		return int16(0x84 - t)
	}
	return int16(t - 0x84)
}

func decodeALaw(a byte) int16 {
	a ^= 0x55
	t := int32(a&0x0f) << 4
	seg := (a & 0x70) >> 4
	switch seg {
	case 0:
		t += 8
	case 1:
		t += 0x108
	default:
		t += 0x108
		t <<= seg - 1
	}
	if a&0x80 != 0 {
		return int16(t)
	}
	return int16(-t)
}

// EncodeULaw and EncodeALaw are the inverse, for tests and tone generators.
func EncodeULaw(s int16) byte {
	const bias, clip = 0x84, 32635
	sign := byte(0)
	v := int32(s)
	if v < 0 {
		v = -v
		sign = 0x80
	}
	v = min(v, clip) + bias
	exp := byte(7)
	for mask := int32(0x4000); v&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := byte(v>>(exp+3)) & 0x0f
	return ^(sign | exp<<4 | mant)
}

func EncodeALaw(s int16) byte {
	sign := byte(0x80)
	v := int32(s)
	if v < 0 {
		v = -v - 1
		sign = 0
	}
	v = min(v, 32767)
	var out byte
	if v < 256 {
		out = byte(v >> 4)
	} else {
		exp := byte(1)
		for t := v >> 8; t > 1; t >>= 1 {
			exp++
		}
		out = exp<<4 | byte(v>>(exp+3))&0x0f
	}
	return (out | sign) ^ 0x55
}
