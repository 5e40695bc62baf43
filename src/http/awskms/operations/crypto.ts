/** AWS KMS cryptographic operations: Encrypt, Decrypt, ReEncrypt, GenerateDataKey(WithoutPlaintext), GenerateRandom. */
import { parseCiphertext } from '../../../core/format/ciphertext.js'
import { invalidField } from '../../../core/errors.js'
import {
  AwsError,
  keyIdOf,
  MAX_CIPHERTEXT,
  MAX_PLAINTEXT,
  onlyValue,
  stateError,
  type Json,
  type OpContext,
} from '../operation.js'
import { present } from '../regions.js'
import { blobOf, contextToAad, intOf, keyArn } from '../translate.js'

export async function encrypt(c: OpContext, b: Json): Promise<Json> {
  onlyValue(b['EncryptionAlgorithm'], ['SYMMETRIC_DEFAULT'], 'EncryptionAlgorithm')
  const keyId = await keyIdOf(c, b['KeyId'])
  const plaintext = blobOf(b['Plaintext'], 'Plaintext', 1, MAX_PLAINTEXT)
  try {
    const w = await c.engine.wrap(c.instance, keyId, {
      plaintext,
      aad: contextToAad(b['EncryptionContext']),
    })
    return {
      CiphertextBlob: w.ciphertext,
      KeyId: keyArn(c, keyId),
      EncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
    }
  } catch (err) {
    return await stateError(c, keyId, err)
  } finally {
    plaintext.fill(0)
  }
}

export async function decrypt(c: OpContext, b: Json): Promise<Json> {
  onlyValue(b['EncryptionAlgorithm'], ['SYMMETRIC_DEFAULT'], 'EncryptionAlgorithm')
  const blob = blobOf(b['CiphertextBlob'], 'CiphertextBlob', 1, MAX_CIPHERTEXT)
  const blobKey = parseCiphertext(blob).keyId
  await present(c, blobKey, 'kms:Decrypt')
  if (b['KeyId'] !== undefined && b['KeyId'] !== null) {
    const given = await keyIdOf(c, b['KeyId'])
    if (given !== blobKey)
      throw new AwsError(
        'IncorrectKeyException',
        'The key ID in the request does not identify the key that encrypted the ciphertext.',
      )
  }
  try {
    const u = await c.engine.unwrap(c.instance, blobKey, blob, {
      aad: contextToAad(b['EncryptionContext']),
    })
    try {
      return {
        KeyId: keyArn(c, blobKey),
        Plaintext: u.plaintext.toString('base64'),
        EncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
      }
    } finally {
      u.plaintext.fill(0)
    }
  } catch (err) {
    return await stateError(c, blobKey, err)
  }
}

export async function reEncrypt(c: OpContext, b: Json): Promise<Json> {
  onlyValue(b['SourceEncryptionAlgorithm'], ['SYMMETRIC_DEFAULT'], 'SourceEncryptionAlgorithm')
  onlyValue(b['DestinationEncryptionAlgorithm'], ['SYMMETRIC_DEFAULT'], 'DestinationEncryptionAlgorithm')
  const blob = blobOf(b['CiphertextBlob'], 'CiphertextBlob', 1, MAX_CIPHERTEXT)
  const blobKey = parseCiphertext(blob).keyId
  await present(c, blobKey, 'kms:ReEncryptFrom')
  if (b['SourceKeyId'] !== undefined && b['SourceKeyId'] !== null) {
    if ((await keyIdOf(c, b['SourceKeyId'], 'SourceKeyId', 'kms:ReEncryptFrom')) !== blobKey) {
      throw new AwsError(
        'IncorrectKeyException',
        'The source key ID does not identify the key that encrypted the ciphertext.',
      )
    }
  }
  const dest = await keyIdOf(c, b['DestinationKeyId'], 'DestinationKeyId', 'kms:ReEncryptTo')
  try {
    const r = await c.engine.reencrypt(c.instance, blob, {
      sourceKeyId: blobKey,
      sourceAad: contextToAad(b['SourceEncryptionContext'], 'SourceEncryptionContext'),
      destinationKeyId: dest,
      destinationAad: contextToAad(b['DestinationEncryptionContext'], 'DestinationEncryptionContext'),
    })
    return {
      CiphertextBlob: r.ciphertext,
      SourceKeyId: keyArn(c, r.sourceKeyId),
      KeyId: keyArn(c, r.keyId),
      SourceEncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
      DestinationEncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
    }
  } catch (err) {
    try {
      await stateError(c, blobKey, err)
    } catch (e) {
      if (e !== err) throw e
    }
    return await stateError(c, dest, err)
  }
}

async function dataKey(c: OpContext, b: Json, withPlaintext: boolean): Promise<Json> {
  const keyId = await keyIdOf(c, b['KeyId'])
  const aad = contextToAad(b['EncryptionContext'])
  if (b['KeySpec'] !== undefined && b['NumberOfBytes'] !== undefined) {
    throw invalidField('KeySpec', 'give KeySpec or NumberOfBytes, not both')
  }
  let n: number
  if (b['KeySpec'] === 'AES_256') n = 32
  else if (b['KeySpec'] === 'AES_128') n = 16
  else if (b['KeySpec'] !== undefined) throw invalidField('KeySpec', 'must be AES_256 or AES_128')
  else if (b['NumberOfBytes'] !== undefined) n = intOf(b['NumberOfBytes'], 'NumberOfBytes', 1, 1024, 32)
  else throw invalidField('KeySpec', 'KeySpec or NumberOfBytes is required')
  let plaintext: Buffer | undefined
  try {
    const w =
      n === 32
        ? await c.engine.wrap(c.instance, keyId, { aad })
        : await c.engine.wrap(c.instance, keyId, {
            aad,
            plaintext: (plaintext = await c.engine.generateRandom(n)),
          })
    plaintext ??= w.plaintext
    return {
      CiphertextBlob: w.ciphertext,
      ...(withPlaintext ? { Plaintext: plaintext?.toString('base64') } : {}),
      KeyId: keyArn(c, keyId),
    }
  } catch (err) {
    return await stateError(c, keyId, err)
  } finally {
    plaintext?.fill(0)
  }
}

/** GenerateDataKey: a new data key, in plaintext and wrapped. */
export const generateDataKey = (c: OpContext, b: Json): Promise<Json> => dataKey(c, b, true)

/** GenerateDataKeyWithoutPlaintext: a new data key, wrapped only. */
export const generateDataKeyWithoutPlaintext = (c: OpContext, b: Json): Promise<Json> => dataKey(c, b, false)

export async function generateRandom(c: OpContext, b: Json): Promise<Json> {
  const n = intOf(b['NumberOfBytes'], 'NumberOfBytes', 1, 1024, 32)
  const r = await c.engine.generateRandom(n)
  try {
    return { Plaintext: r.toString('base64') }
  } finally {
    r.fill(0)
  }
}
