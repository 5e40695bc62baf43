/** The error an AWS KMS operation raises in AWS terms (`__type`, message, status). */
export class AwsError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status: number = 400,
  ) {
    super(message)
  }
}
