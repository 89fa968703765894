package media

//go:generate go tool bpf2go -cc clang -target bpfel -cflags "-O2 -g -Wall -Werror -nostdinc -I../../bpf/headers" -type xm_gen_cfg -type xm_gen_call -type xm_gen_state -type xm_sink_cfg -type xm_ceil_dir -type xm_sink_counter xm media.bpf.c
